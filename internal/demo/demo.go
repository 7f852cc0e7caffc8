// Package demo fills a tenant with believable data for people who want to
// look at the service before they have an agent of their own: runs of a
// few agents with nested child runs, steps with readable inputs and
// outputs, tool calls that sometimes fail, a month of usage across several
// models, and a health baseline of a few components. `agentstore seed
// --demo` and `make run` call it; the browser tests use its large run.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/agentstore/agentstore/internal/store"
	"github.com/agentstore/agentstore/internal/tenant"
)

// Options tune Seed.
type Options struct {
	// Now is the end of the seeded history; zero means time.Now().
	Now time.Time
	// LargeRunSteps, when positive, adds one succeeded run with that many
	// steps (the browser tests open a 20,000-step run); it is not part of
	// the demo by default because it takes a while to write.
	LargeRunSteps int
	// Seed makes the data repeatable; 0 picks the fixed default seed.
	Seed uint64
}

// Result says what Seed wrote.
type Result struct {
	Tenant    uuid.UUID
	Runs      int
	Steps     int
	ToolCalls int
	Usage     int
	Health    int
	// LargeRun is the run of Options.LargeRunSteps, uuid.Nil without one.
	LargeRun uuid.UUID
	// Running is a run left running, which takes more steps.
	Running uuid.UUID
}

// Models the demo's runs use, with their price per million input and
// output tokens in USD.
var models = []struct {
	name      string
	in, out   float64
	dailyBase int64 // tokens of standalone (batch) usage per day
}{
	{"gpt-4o", 2.50, 10.00, 900_000},
	{"gpt-4o-mini", 0.15, 0.60, 3_000_000},
	{"claude-3-5-sonnet", 3.00, 15.00, 600_000},
	{"gemini-1.5-pro", 1.25, 5.00, 400_000},
}

// Components of the health baseline.
var components = []string{"db", "llm-gateway", "vector-store", "webhook-relay"}

// seeder carries the state of one Seed.
type seeder struct {
	st  *store.Store
	ctx context.Context
	rnd *rand.Rand
	now time.Time
	res Result
}

// Seed writes the demo data into tenantID through the store's own
// repositories, so that every row, audit entry and derived figure is what
// the API would have written.
func Seed(ctx context.Context, st *store.Store, tenantID uuid.UUID, opt Options) (Result, error) {
	if tenantID == uuid.Nil {
		return Result{}, fmt.Errorf("demo: a tenant is required")
	}
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	if opt.Seed == 0 {
		opt.Seed = 15
	}
	s := &seeder{
		st: st,
		ctx: tenant.NewContext(ctx, tenant.Viewer{
			TenantID: tenantID, UserID: "demo-seed", Role: tenant.RoleServiceRole,
		}),
		rnd: rand.New(rand.NewPCG(opt.Seed, 0x5eed)),
		now: opt.Now.UTC().Truncate(time.Second),
		res: Result{Tenant: tenantID},
	}
	if err := s.health(ctx); err != nil {
		return s.res, err
	}
	if err := s.dailyUsage(); err != nil {
		return s.res, err
	}
	if err := s.runs(); err != nil {
		return s.res, err
	}
	if opt.LargeRunSteps > 0 {
		if err := s.largeRun(opt.LargeRunSteps); err != nil {
			return s.res, err
		}
	}
	return s.res, nil
}

// health records a three-day baseline every hour per component, with
// degraded spells and one outage.
func (s *seeder) health(ctx context.Context) error {
	sys := tenant.SystemContext(ctx)
	start := s.now.Add(-72 * time.Hour).Truncate(time.Hour)
	for i, comp := range components {
		for t := start; !t.After(s.now); t = t.Add(time.Hour) {
			status, latency := "up", int64(8+s.rnd.IntN(20)+i*15)
			ago := s.now.Sub(t)
			switch {
			case comp == "llm-gateway" && ago > 30*time.Hour && ago <= 33*time.Hour:
				status, latency = "degraded", 900+int64(s.rnd.IntN(600))
			case comp == "vector-store" && ago > 10*time.Hour && ago <= 12*time.Hour:
				status, latency = "down", 0
			case comp == "webhook-relay" && ago > 50*time.Hour && ago <= 51*time.Hour:
				status, latency = "degraded", 400+int64(s.rnd.IntN(200))
			}
			details := map[string]any{"source": "demo"}
			var lat *int64
			if status != "down" {
				lat = &latency
			} else {
				details["error"] = "connection refused"
			}
			at := t
			if _, err := s.st.Health.Record(sys, store.NewHealth{
				Component: comp, Status: status, LatencyMs: lat, Details: mustJSON(details), CheckedAt: &at,
			}); err != nil {
				return fmt.Errorf("demo: health: %w", err)
			}
			s.res.Health++
		}
	}
	return nil
}

// dailyUsage records 30 days of standalone (batch) usage per model, with
// weekdays busier than weekends and a slow upward trend.
func (s *seeder) dailyUsage() error {
	day0 := s.now.Truncate(24 * time.Hour)
	for d := 29; d >= 0; d-- {
		day := day0.AddDate(0, 0, -d)
		factor := 1 + float64(29-d)*0.02
		if wd := day.Weekday(); wd == time.Saturday || wd == time.Sunday {
			factor *= 0.45
		}
		for _, m := range models {
			total := int64(float64(m.dailyBase) * factor * (0.8 + 0.4*s.rnd.Float64()))
			in := total * 7 / 10
			at := day.Add(time.Duration(9+s.rnd.IntN(8)) * time.Hour)
			if at.After(s.now) {
				at = s.now
			}
			if err := s.usage(nil, m.name, in, total-in, at); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *seeder) usage(runID *uuid.UUID, model string, in, out int64, at time.Time) error {
	cost := 0.0
	for _, m := range models {
		if m.name == model {
			cost = (float64(in)*m.in + float64(out)*m.out) / 1e6
		}
	}
	cached := in / 5
	_, err := s.st.Usage.Record(s.ctx, store.NewUsage{
		RunID: runID, Model: model, InputTokens: in, OutputTokens: out, CachedInputTokens: cached,
		CostUSD: float64(int64(cost*1e6)) / 1e6, RecordedAt: &at,
	})
	if err != nil {
		return fmt.Errorf("demo: usage: %w", err)
	}
	s.res.Usage++
	return nil
}

// step is one step of a scripted run.
type step struct {
	typ, name string
	in, out   any
	err       string
	ms        int
	calls     []call
}

// call is a tool call of a step.
type call struct {
	tool     string
	args     any
	result   any
	err      string
	ms       int
	offsetMs int
}

// script is one run to write: its steps and, run by the last of them,
// its child runs.
type script struct {
	agent, model string
	input        any
	output       any
	status       string // succeeded, failed, cancelled, running, queued
	err          string
	steps        []step
	children     []script
}

// runs writes the scripted runs of several agents over the last two days.
func (s *seeder) runs() error {
	var scripts []script
	for i := 0; i < 14; i++ {
		scripts = append(scripts, s.supportRun(i))
	}
	for i := 0; i < 6; i++ {
		scripts = append(scripts, s.researchRun(i))
	}
	for i := 0; i < 8; i++ {
		scripts = append(scripts, s.invoiceRun(i))
	}
	for i := 0; i < 5; i++ {
		scripts = append(scripts, s.reviewRun(i))
	}
	s.rnd.Shuffle(len(scripts), func(i, j int) { scripts[i], scripts[j] = scripts[j], scripts[i] })
	// Oldest first, so that the list, newest first, starts with the most
	// recent start; the last two are still going.
	scripts = append(scripts, s.liveRun())
	span := 46 * time.Hour
	for i, sc := range scripts {
		start := s.now.Add(-span + time.Duration(i)*span/time.Duration(len(scripts)))
		if sc.status == "running" || sc.status == "queued" {
			start = s.now.Add(-time.Duration(2+s.rnd.IntN(5)) * time.Minute)
		}
		id, err := s.write(sc, start, nil)
		if err != nil {
			return err
		}
		if sc.status == "running" && s.res.Running == uuid.Nil {
			s.res.Running = id
		}
	}
	return nil
}

// write creates the run of sc started at start, its steps, tool calls,
// usage and children, and moves it to its final status. It returns the
// run's id.
func (s *seeder) write(sc script, start time.Time, parent *uuid.UUID) (uuid.UUID, error) {
	status := "running"
	if sc.status == "queued" {
		status = "queued"
	}
	model := sc.model
	run, err := s.st.Runs.Create(s.ctx, store.NewRun{
		AgentName: sc.agent, Status: status, Input: mustJSON(sc.input), Model: &model,
		ParentRunID: parent, StartedAt: ptr(start),
		Metadata: mustJSON(map[string]any{"source": "demo", "environment": "staging"}),
	})
	if err != nil {
		return uuid.Nil, fmt.Errorf("demo: run %s: %w", sc.agent, err)
	}
	s.res.Runs++
	t := start
	var news []store.NewStep
	type pendingCall struct {
		stepIndex int
		c         call
		at        time.Time
	}
	var calls []pendingCall
	var llm []time.Time
	for i, st := range sc.steps {
		begin := t.Add(time.Duration(20+s.rnd.IntN(60)) * time.Millisecond)
		end := begin.Add(time.Duration(st.ms) * time.Millisecond)
		ns := store.NewStep{
			ID: ptr(uuid.New()), Type: st.typ, Name: ptr(st.name), Input: mustJSON(st.in),
			StartedAt: ptr(begin),
		}
		if sc.status == "running" && i == len(sc.steps)-1 {
			ns.Status = "running"
		} else {
			ns.EndedAt = ptr(end)
		}
		if st.out != nil {
			ns.Output = mustJSON(st.out)
		}
		if st.err != "" {
			ns.Status, ns.Error = "failed", ptr(st.err)
		}
		news = append(news, ns)
		for _, c := range st.calls {
			calls = append(calls, pendingCall{stepIndex: i, c: c, at: begin.Add(time.Duration(c.offsetMs) * time.Millisecond)})
		}
		if st.typ == "llm" {
			llm = append(llm, end)
		}
		t = end
	}
	if len(news) > 0 {
		if _, err := s.st.Runs.AppendSteps(s.ctx, run.ID, news); err != nil {
			return uuid.Nil, fmt.Errorf("demo: steps of %s: %w", sc.agent, err)
		}
		s.res.Steps += len(news)
	}
	if len(calls) > 0 {
		var ncs []store.NewToolCall
		for _, pc := range calls {
			nc := store.NewToolCall{
				StepID: news[pc.stepIndex].ID, ToolName: pc.c.tool, Arguments: mustJSON(pc.c.args),
				Status: "succeeded", DurationMs: ptr(int64(pc.c.ms)),
				StartedAt: ptr(pc.at), EndedAt: ptr(pc.at.Add(time.Duration(pc.c.ms) * time.Millisecond)),
			}
			if pc.c.result != nil {
				nc.Result = mustJSON(pc.c.result)
			}
			if pc.c.err != "" {
				nc.Status, nc.Error = "failed", ptr(pc.c.err)
			}
			ncs = append(ncs, nc)
		}
		if _, err := s.st.Runs.AppendToolCalls(s.ctx, run.ID, ncs); err != nil {
			return uuid.Nil, fmt.Errorf("demo: tool calls of %s: %w", sc.agent, err)
		}
		s.res.ToolCalls += len(ncs)
	}
	for _, at := range llm {
		in := int64(800 + s.rnd.IntN(6000))
		if err := s.usage(&run.ID, sc.model, in, int64(100+s.rnd.IntN(900)), at); err != nil {
			return uuid.Nil, err
		}
	}
	childStart := t
	for _, child := range sc.children {
		if _, err := s.write(child, childStart.Add(50*time.Millisecond), &run.ID); err != nil {
			return uuid.Nil, err
		}
		childStart = childStart.Add(time.Duration(child.durationMs()) * time.Millisecond)
	}
	if len(sc.children) > 0 {
		// The parent's closing step comes after its children.
		end := childStart.Add(100 * time.Millisecond)
		summary := store.NewStep{
			ID: ptr(uuid.New()), Type: "llm", Name: ptr("compose answer"),
			Input: mustJSON(map[string]any{"children": len(sc.children)}), Output: mustJSON(sc.output),
			StartedAt: ptr(childStart), EndedAt: ptr(end),
		}
		if _, err := s.st.Runs.AppendSteps(s.ctx, run.ID, []store.NewStep{summary}); err != nil {
			return uuid.Nil, err
		}
		s.res.Steps++
		t = end
	}
	switch sc.status {
	case "succeeded", "failed", "cancelled":
		p := store.RunPatch{Status: ptr(sc.status), EndedAt: ptr(t.Add(30 * time.Millisecond))}
		if sc.output != nil && sc.status == "succeeded" {
			p.Output = mustJSON(sc.output)
		}
		if sc.err != "" {
			p.Error = ptr(sc.err)
		}
		if _, err := s.st.Runs.Update(s.ctx, run.ID, p); err != nil {
			return uuid.Nil, fmt.Errorf("demo: finish %s: %w", sc.agent, err)
		}
	}
	return run.ID, nil
}

// durationMs is roughly how long the script's steps take.
func (sc script) durationMs() int {
	n := 0
	for _, st := range sc.steps {
		n += st.ms + 50
	}
	for _, c := range sc.children {
		n += c.durationMs()
	}
	return n + 150
}

func (s *seeder) pick(xs ...string) string { return xs[s.rnd.IntN(len(xs))] }

func (s *seeder) ms(lo, hi int) int { return lo + s.rnd.IntN(hi-lo) }

// supportRun is a support-triage run: classify a ticket, look the customer
// up, search the knowledge base, draft a reply. Some fail on a CRM
// timeout.
func (s *seeder) supportRun(i int) script {
	customers := []string{"Acme Corp", "Globex", "Initech", "Umbrella Health", "Stark Logistics", "Wayne Retail"}
	issues := []string{
		"cannot reset my password", "invoice shows the wrong VAT number", "webhook deliveries are delayed",
		"export to CSV times out", "SSO login loops back to the sign-in page", "billing charged twice this month",
	}
	customer, issue := customers[i%len(customers)], issues[(i*5+1)%len(issues)]
	ticket := fmt.Sprintf("T-%05d", 18000+i*37)
	model := s.pick("gpt-4o-mini", "gpt-4o")
	crmFails := i%5 == 3
	sc := script{
		agent: "support-triage", model: model, status: "succeeded",
		input: map[string]any{"ticketId": ticket, "customer": customer, "subject": issue, "channel": s.pick("email", "chat")},
		steps: []step{
			{typ: "llm", name: "classify ticket", ms: s.ms(400, 1400),
				in:  map[string]any{"messages": []map[string]string{{"role": "system", "content": "Classify the support ticket into billing, auth, integrations or data."}, {"role": "user", "content": issue}}},
				out: map[string]any{"category": s.pick("billing", "auth", "integrations", "data"), "priority": s.pick("p2", "p3"), "confidence": 0.82 + 0.1*s.rnd.Float64()}},
			{typ: "tool", name: "lookup customer", ms: s.ms(150, 600),
				in:    map[string]any{"customer": customer},
				out:   map[string]any{"plan": s.pick("team", "business", "enterprise"), "seats": 10 + s.rnd.IntN(400), "openTickets": s.rnd.IntN(4)},
				calls: []call{{tool: "crm.get_account", args: map[string]any{"name": customer}, result: map[string]any{"accountId": fmt.Sprintf("acc_%04d", 100+i)}, ms: s.ms(120, 500)}}},
			{typ: "retrieval", name: "search knowledge base", ms: s.ms(200, 700),
				in:  map[string]any{"query": issue, "topK": 5},
				out: map[string]any{"documents": []map[string]any{{"title": "Troubleshooting: " + issue, "score": 0.91}, {"title": "Account settings FAQ", "score": 0.74}}},
				calls: []call{{tool: "vector.search", args: map[string]any{"index": "kb-articles", "query": issue, "k": 5},
					result: map[string]any{"hits": 5}, ms: s.ms(80, 300)}}},
			{typ: "llm", name: "draft reply", ms: s.ms(1200, 3800),
				in:  map[string]any{"messages": []map[string]string{{"role": "system", "content": "Write a short, friendly reply that solves the customer's problem."}, {"role": "user", "content": issue}}},
				out: map[string]any{"reply": "Hi! Thanks for reaching out about \"" + issue + "\". Here is what fixes it: …", "tokens": 212}},
		},
		output: map[string]any{"ticketId": ticket, "action": "reply_drafted", "needsHuman": false},
	}
	if crmFails {
		sc.steps[1].err = "crm.get_account: upstream timed out after 5000 ms"
		sc.steps[1].out = nil
		sc.steps[1].calls = []call{
			{tool: "crm.get_account", args: map[string]any{"name": customer}, err: "timeout after 5000 ms (attempt 1 of 2)", ms: 5000},
			{tool: "crm.get_account", args: map[string]any{"name": customer}, err: "timeout after 5000 ms (attempt 2 of 2)", ms: 5000, offsetMs: 5100},
		}
		sc.steps = sc.steps[:2]
		sc.status, sc.err, sc.output = "failed", "customer lookup failed: CRM did not answer (2 attempts)", nil
	}
	if i%7 == 5 {
		// A tool call that fails and is retried successfully.
		sc.steps[2].calls = append([]call{{tool: "vector.search", args: map[string]any{"index": "kb-articles", "query": issue},
			err: "429 Too Many Requests: retry after 200 ms", ms: 40}}, sc.steps[2].calls...)
		sc.steps[2].calls[1].offsetMs = 260
	}
	if i == 9 {
		sc.status, sc.output = "cancelled", nil
		sc.err = "cancelled by operator: duplicate ticket"
		sc.steps = sc.steps[:1]
	}
	return sc
}

// researchRun is a research assistant that delegates to child runs: a web
// researcher per question (which itself calls a summariser) and a fact
// checker.
func (s *seeder) researchRun(i int) script {
	topics := []string{
		"EU AI Act obligations for general-purpose models", "battery recycling capacity in Europe 2025",
		"vector database pricing comparison", "latency budgets for voice agents",
		"open-weight models for code review", "carbon cost of LLM inference",
	}
	topic := topics[i%len(topics)]
	model := s.pick("claude-3-5-sonnet", "gpt-4o")
	sub := func(q string, fail bool) script {
		child := script{
			agent: "web-researcher", model: "gpt-4o-mini", status: "succeeded",
			input: map[string]any{"question": q},
			steps: []step{
				{typ: "tool", name: "web search", ms: s.ms(400, 1200), in: map[string]any{"q": q},
					out:   map[string]any{"results": 8},
					calls: []call{{tool: "web.search", args: map[string]any{"q": q, "n": 8}, result: map[string]any{"urls": []string{"https://example.org/a", "https://example.org/b"}}, ms: s.ms(300, 900)}}},
				{typ: "tool", name: "fetch pages", ms: s.ms(600, 2000), in: map[string]any{"urls": 2},
					out: map[string]any{"fetched": 2},
					calls: []call{
						{tool: "web.fetch", args: map[string]any{"url": "https://example.org/a"}, result: map[string]any{"bytes": 48213}, ms: s.ms(200, 800)},
						{tool: "web.fetch", args: map[string]any{"url": "https://example.org/b"}, result: map[string]any{"bytes": 15550}, ms: s.ms(200, 800), offsetMs: 50},
					}},
				{typ: "llm", name: "extract findings", ms: s.ms(900, 2500), in: map[string]any{"question": q, "sources": 2},
					out: map[string]any{"findings": []string{"Finding one about " + q, "Finding two, with a caveat"}}},
			},
			output: map[string]any{"findings": 2},
			children: []script{{
				agent: "summarizer", model: "gpt-4o-mini", status: "succeeded",
				input: map[string]any{"text": "findings about " + q},
				steps: []step{{typ: "llm", name: "summarise", ms: s.ms(500, 1500),
					in: map[string]any{"maxWords": 80}, out: map[string]any{"summary": "In short: " + q + " …"}}},
				output: map[string]any{"summary": "In short: " + q + " …"},
			}},
		}
		if fail {
			child.steps[1].calls[1].err = "web.fetch: 403 Forbidden (robots.txt disallows /b)"
			child.steps[1].calls[1].result = nil
			child.steps[1].err = "1 of 2 pages could not be fetched"
			child.steps[1].out = map[string]any{"fetched": 1}
			child.steps = child.steps[:2]
			child.children = nil
			child.status, child.err, child.output = "failed", "not enough sources: 1 of 2 pages could not be fetched", nil
		}
		return child
	}
	sc := script{
		agent: "research-assistant", model: model, status: "succeeded",
		input: map[string]any{"topic": topic, "depth": s.pick("brief", "detailed")},
		steps: []step{
			{typ: "llm", name: "plan questions", ms: s.ms(800, 2000), in: map[string]any{"topic": topic},
				out: map[string]any{"questions": []string{"What is the current state?", "Who are the main players?"}}},
		},
		children: []script{sub(topic+": current state", i == 2), sub(topic+": main players", false),
			{agent: "fact-checker", model: "claude-3-5-sonnet", status: "succeeded", input: map[string]any{"claims": 4},
				steps: []step{{typ: "llm", name: "check claims", ms: s.ms(900, 2200), in: map[string]any{"claims": 4},
					out: map[string]any{"supported": 3, "unsupported": 1}}},
				output: map[string]any{"supported": 3, "unsupported": 1}}},
		output: map[string]any{"report": "# " + topic + "\n\nThree findings, one claim unsupported.", "sources": 4},
	}
	return sc
}

// invoiceRun extracts fields from a PDF invoice; a few fail validation.
func (s *seeder) invoiceRun(i int) script {
	vendor := []string{"Northwind Traders", "Contoso Ltd", "Fabrikam", "Tailspin Toys"}[i%4]
	amount := 120 + s.rnd.IntN(9000)
	sc := script{
		agent: "invoice-extractor", model: s.pick("gemini-1.5-pro", "gpt-4o"), status: "succeeded",
		input: map[string]any{"file": fmt.Sprintf("invoices/2026-11/%s-%03d.pdf", vendor, i), "pages": 1 + s.rnd.IntN(3)},
		steps: []step{
			{typ: "tool", name: "ocr", ms: s.ms(700, 2500), in: map[string]any{"pages": 2}, out: map[string]any{"characters": 3120},
				calls: []call{{tool: "ocr.extract_text", args: map[string]any{"dpi": 300}, result: map[string]any{"characters": 3120}, ms: s.ms(600, 2400)}}},
			{typ: "llm", name: "extract fields", ms: s.ms(900, 2600), in: map[string]any{"schema": []string{"vendor", "number", "date", "total", "vat"}},
				out: map[string]any{"vendor": vendor, "number": fmt.Sprintf("INV-%d", 5000+i), "total": amount, "currency": "EUR"}},
			{typ: "validation", name: "validate totals", ms: s.ms(5, 40), in: map[string]any{"total": amount},
				out: map[string]any{"ok": true}},
			{typ: "tool", name: "post to ledger", ms: s.ms(100, 400), in: map[string]any{"total": amount},
				out:   map[string]any{"ledgerId": fmt.Sprintf("L-%06d", 300000+i)},
				calls: []call{{tool: "erp.create_bill", args: map[string]any{"vendor": vendor, "amount": amount}, result: map[string]any{"billId": 9100 + i}, ms: s.ms(90, 380)}}},
		},
		output: map[string]any{"billId": 9100 + i, "status": "posted"},
	}
	if i%4 == 2 {
		sc.steps[2].err = fmt.Sprintf("line items add up to %d.00 EUR but the total says %d.00 EUR", amount-17, amount)
		sc.steps[2].out = map[string]any{"ok": false}
		sc.steps = sc.steps[:3]
		sc.status, sc.err, sc.output = "failed", "validation failed: totals do not match", nil
	}
	return sc
}

// reviewRun reviews a pull request with a linter tool and an LLM.
func (s *seeder) reviewRun(i int) script {
	pr := 4200 + i*3
	sc := script{
		agent: "code-reviewer", model: "claude-3-5-sonnet", status: "succeeded",
		input: map[string]any{"repository": "acme/payments", "pullRequest": pr},
		steps: []step{
			{typ: "tool", name: "fetch diff", ms: s.ms(200, 700), in: map[string]any{"pr": pr}, out: map[string]any{"files": 3 + i, "additions": 120 + i*31},
				calls: []call{{tool: "git.diff", args: map[string]any{"pr": pr}, result: map[string]any{"files": 3 + i}, ms: s.ms(150, 600)}}},
			{typ: "tool", name: "run linters", ms: s.ms(1500, 4000), in: map[string]any{"linters": []string{"go vet", "staticcheck"}}, out: map[string]any{"warnings": i},
				calls: []call{{tool: "ci.run_linters", args: map[string]any{"pr": pr}, result: map[string]any{"warnings": i}, ms: s.ms(1400, 3900)}}},
			{typ: "llm", name: "review changes", ms: s.ms(3000, 9000), in: map[string]any{"diffLines": 120 + i*31},
				out: map[string]any{"comments": []map[string]any{{"file": "ledger/post.go", "line": 88, "body": "This error is dropped; return it to the caller."}}}},
			{typ: "tool", name: "post review", ms: s.ms(100, 400), in: map[string]any{"comments": 1}, out: map[string]any{"reviewId": 77000 + i},
				calls: []call{{tool: "git.post_review", args: map[string]any{"pr": pr, "event": "COMMENT"}, result: map[string]any{"id": 77000 + i}, ms: s.ms(90, 380)}}},
		},
		output: map[string]any{"comments": 1, "verdict": "changes requested"},
	}
	if i == 3 {
		sc.steps[3].calls[0].err = "git.post_review: 422 Unprocessable Entity: line 88 is not part of the diff"
		sc.steps[3].calls[0].result = nil
		sc.steps[3].err = "review could not be posted"
		sc.steps[3].out = nil
		sc.status, sc.err, sc.output = "failed", "review could not be posted: 422 from the git host", nil
	}
	return sc
}

// liveRun is a run still going: it shows how a run looks while an agent
// works, and takes more steps.
func (s *seeder) liveRun() script {
	sc := s.researchRun(1)
	sc.status, sc.output, sc.children = "running", nil, nil
	sc.steps = append(sc.steps, step{typ: "tool", name: "web search", ms: 900, in: map[string]any{"q": "latest figures"}})
	return sc
}

// largeRun writes one succeeded run of n steps in batches of 1,000 (the
// API's largest append), each with a small input and output.
func (s *seeder) largeRun(n int) error {
	start := s.now.Add(-3 * time.Hour)
	model := "gpt-4o-mini"
	run, err := s.st.Runs.Create(s.ctx, store.NewRun{
		AgentName: "bulk-classifier", Status: "running", Model: &model, StartedAt: &start,
		Input: mustJSON(map[string]any{"dataset": "support-archive-2025", "items": n}),
	})
	if err != nil {
		return fmt.Errorf("demo: large run: %w", err)
	}
	s.res.Runs++
	t := start
	labels := []string{"billing", "auth", "integrations", "data", "other"}
	for first := 0; first < n; first += 1000 {
		var batch []store.NewStep
		for i := first; i < n && i < first+1000; i++ {
			end := t.Add(time.Duration(200+i%300) * time.Millisecond)
			st := store.NewStep{
				Type: "llm", Name: ptr(fmt.Sprintf("classify item %d", i+1)),
				Input:     json.RawMessage(fmt.Sprintf(`{"item":%d,"text":"ticket text %d"}`, i+1, i+1)),
				Output:    json.RawMessage(fmt.Sprintf(`{"label":%q}`, labels[i%len(labels)])),
				StartedAt: ptr(t), EndedAt: ptr(end),
			}
			if i%997 == 500 {
				st.Status, st.Error, st.Output = "failed", ptr("model returned an unknown label"), nil
			}
			batch = append(batch, st)
			t = end
		}
		if _, err := s.st.Runs.AppendSteps(s.ctx, run.ID, batch); err != nil {
			return fmt.Errorf("demo: large run steps: %w", err)
		}
		s.res.Steps += len(batch)
	}
	if _, err := s.st.Runs.Update(s.ctx, run.ID, store.RunPatch{Status: ptr("succeeded"), EndedAt: &t,
		Output: mustJSON(map[string]any{"classified": n})}); err != nil {
		return fmt.Errorf("demo: large run: %w", err)
	}
	s.res.LargeRun = run.ID
	return nil
}

func ptr[T any](v T) *T { return &v }

func mustJSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // the demo's own literals: cannot fail
	}
	return b
}
