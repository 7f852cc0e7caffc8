package ratelimit

import (
	"strconv"
	"time"
)

// Headers returns the response header fields of a decision:
//
//	X-RateLimit-Limit      the budget per window
//	X-RateLimit-Remaining  what is left of it
//	X-RateLimit-Reset      the end of the window, Unix seconds
//	RateLimit-Policy       "<policy>";q=<limit>;w=<window seconds>
//	RateLimit              "<policy>";r=<remaining>;t=<seconds to reset>
//	Retry-After            seconds, rounded up, at least 1; only when refused
//
// RateLimit-Policy and RateLimit follow draft-ietf-httpapi-ratelimit-headers-11
// (Structured Field lists of one String item each). Times are rounded up to
// whole seconds, so a client that waits what they say is never early.
func Headers(r Result) map[string]string { return headersAt(r, time.Now()) }

func headersAt(r Result, now time.Time) map[string]string {
	policy := r.Policy
	if policy == "" {
		policy = PolicyDefault
	}
	policy = `"` + policy + `"` // a Structured Field String; ours need no escapes
	untilReset := max(ceilSeconds(r.Reset.Sub(now)), 0)
	reset := r.Reset.Unix()
	if r.Reset.Nanosecond() > 0 {
		reset++
	}
	h := map[string]string{
		"X-RateLimit-Limit":     strconv.Itoa(r.Limit),
		"X-RateLimit-Remaining": strconv.Itoa(r.Remaining),
		"X-RateLimit-Reset":     strconv.FormatInt(reset, 10),
		"RateLimit-Policy": policy + ";q=" + strconv.Itoa(r.Limit) +
			";w=" + strconv.FormatInt(max(ceilSeconds(r.Window), 1), 10),
		"RateLimit": policy + ";r=" + strconv.Itoa(r.Remaining) +
			";t=" + strconv.FormatInt(untilReset, 10),
	}
	if !r.Allowed {
		// The draft: Retry-After must not point before the window's end.
		h["Retry-After"] = strconv.FormatInt(max(ceilSeconds(r.RetryAfter), untilReset, 1), 10)
	}
	return h
}

// ceilSeconds returns d in whole seconds, rounded up.
func ceilSeconds(d time.Duration) int64 {
	s := int64(d / time.Second)
	if d%time.Second > 0 {
		s++
	}
	return s
}
