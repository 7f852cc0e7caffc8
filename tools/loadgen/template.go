package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// A template is a body with placeholders, split once into parts and
// expanded per request.
type template []part

// part is literal text or one placeholder.
type part struct {
	kind partKind
	text []byte // the literal, for literal
	name string // the slot, for namedUUID
}

type partKind int

const (
	literal   partKind = iota
	freshUUID          // {{uuid}}
	namedUUID          // {{uuid:NAME}}
	now                // {{now}}
	nowNanos           // {{nowns}}
	traceID            // {{traceid:NAME}}
	spanID             // {{spanid:NAME}}
)

// parseTemplate splits body at its placeholders, refusing unknown ones.
func parseTemplate(body []byte) (template, error) {
	var t template
	rest := body
	for {
		i := bytes.Index(rest, []byte("{{"))
		if i < 0 {
			break
		}
		j := bytes.Index(rest[i:], []byte("}}"))
		if j < 0 {
			return nil, fmt.Errorf("-body-template: unclosed %q", truncate(rest[i:]))
		}
		if i > 0 {
			t = append(t, part{kind: literal, text: rest[:i]})
		}
		name := string(rest[i+2 : i+j])
		switch {
		case name == "uuid":
			t = append(t, part{kind: freshUUID})
		case len(name) > len("uuid:") && name[:len("uuid:")] == "uuid:":
			t = append(t, part{kind: namedUUID, name: name[len("uuid:"):]})
		case name == "now":
			t = append(t, part{kind: now})
		case name == "nowns":
			t = append(t, part{kind: nowNanos})
		case len(name) > len("traceid:") && name[:len("traceid:")] == "traceid:":
			t = append(t, part{kind: traceID, name: name[len("traceid:"):]})
		case len(name) > len("spanid:") && name[:len("spanid:")] == "spanid:":
			t = append(t, part{kind: spanID, name: name[len("spanid:"):]})
		default:
			return nil, fmt.Errorf("-body-template: unknown placeholder {{%s}} (want {{uuid}}, {{uuid:NAME}}, {{now}}, {{nowns}}, {{traceid:NAME}} or {{spanid:NAME}})", name)
		}
		rest = rest[i+j+2:]
	}
	if len(rest) > 0 {
		t = append(t, part{kind: literal, text: rest})
	}
	return t, nil
}

func truncate(b []byte) string {
	if len(b) > 20 {
		return string(b[:20]) + "..."
	}
	return string(b)
}

// expand returns a new body with every placeholder filled; at is {{now}}.
func (t template) expand(at time.Time) []byte {
	var out bytes.Buffer
	var named map[string]string
	for _, p := range t {
		switch p.kind {
		case literal:
			out.Write(p.text)
		case freshUUID:
			out.WriteString(uuid.Must(uuid.NewV7()).String())
		case namedUUID:
			if named == nil {
				named = map[string]string{}
			}
			id, ok := named[p.name]
			if !ok {
				id = uuid.Must(uuid.NewV7()).String()
				named[p.name] = id
			}
			out.WriteString(id)
		case now:
			out.WriteString(at.UTC().Format(time.RFC3339Nano))
		case nowNanos:
			out.WriteString(strconv.FormatInt(at.UnixNano(), 10))
		case traceID, spanID:
			if named == nil {
				named = map[string]string{}
			}
			key := fmt.Sprint(p.kind, ":", p.name)
			id, ok := named[key]
			if !ok {
				u := uuid.New() // random, so that no two requests share a trace or span id
				id = hex.EncodeToString(u[:])
				if p.kind == spanID {
					id = id[:16]
				}
				named[key] = id
			}
			out.WriteString(id)
		}
	}
	return out.Bytes()
}
