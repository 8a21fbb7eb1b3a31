// Package lint checks a StacyVM configuration for production use without
// touching Docker, KVM or the database: every rule has a stable id, a
// severity and an exact remediation. Unknown keys are reported with their
// line numbers from a strict second decode of the file.
package lint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"

	"github.com/stacyvm/stacyvm/internal/config"
)

// Severity orders findings; only errors fail a lint.
type Severity string

// The severities.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// Rule is one production check.
type Rule struct {
	ID          string
	Severity    Severity
	Title       string
	Remediation string
	// Check returns one message per violation (with the config key in it);
	// none means the rule passes.
	Check func(c *config.Config) []string
}

// Finding is one violation of a rule (or a file problem).
type Finding struct {
	Rule        string   `json:"rule"`
	Severity    Severity `json:"severity"`
	Message     string   `json:"message"`
	Remediation string   `json:"remediation"`
	Line        int      `json:"line,omitempty"`
}

// Report is the result of a lint run.
type Report struct {
	File       string    `json:"file"`
	Production bool      `json:"production"`
	Passed     bool      `json:"passed"`
	Errors     int       `json:"errors"`
	Warnings   int       `json:"warnings"`
	Findings   []Finding `json:"findings"`
	RulesRun   []string  `json:"rules_run"`
}

// File problems (not rules of the production set).
const (
	RuleUnknownKey = "CFG001"
	RuleLoad       = "CFG002"
	RuleValidate   = "CFG003"
)

// Options select what Run checks.
type Options struct {
	File       string   // the config file ("" = search like serve)
	Env        []string // the environment the service will run with
	Home       string
	Production bool
}

// Run loads the configuration exactly as `stacyvm serve` would and checks
// it; production rules apply only with Options.Production.
func Run(o Options) *Report {
	rep := &Report{Production: o.Production, Findings: []Finding{}, RulesRun: []string{}}
	cfg, err := config.Load(config.LoadOptions{File: o.File, Env: o.Env, Home: o.Home})
	if cfg != nil {
		rep.File = cfg.Source
	}
	if rep.File == "" {
		rep.File = o.File
	}
	if rep.File != "" {
		rep.Findings = append(rep.Findings, UnknownKeys(rep.File)...)
	}
	if err != nil {
		if len(rep.Findings) == 0 { // unknown keys already explain a load failure
			rep.add(Finding{Rule: RuleLoad, Severity: Error, Message: oneLine(err.Error()),
				Remediation: "fix the file or environment variable named in the message; docs/operations.md#configuration"})
		}
		return rep.finish()
	}
	if err := cfg.Validate(); err != nil {
		rep.add(Finding{Rule: RuleValidate, Severity: Error, Message: oneLine(err.Error()),
			Remediation: "fix the values named in the message; docs/operations.md#configuration"})
	}
	for _, w := range cfg.Warnings {
		rep.add(Finding{Rule: RuleLoad, Severity: Warning, Message: w,
			Remediation: "remove or rename the variable; docs/operations.md#configuration"})
	}
	if o.Production {
		rep.Findings = append(rep.Findings, Check(cfg)...)
		for _, r := range Rules() {
			rep.RulesRun = append(rep.RulesRun, r.ID)
		}
	}
	return rep.finish()
}

// Check applies every production rule to cfg.
func Check(cfg *config.Config) []Finding {
	var out []Finding
	for _, r := range Rules() {
		for _, msg := range r.Check(cfg) {
			out = append(out, Finding{Rule: r.ID, Severity: r.Severity, Message: msg, Remediation: r.Remediation})
		}
	}
	return out
}

func (r *Report) add(f Finding) { r.Findings = append(r.Findings, f) }

func (r *Report) finish() *Report {
	sort.SliceStable(r.Findings, func(i, j int) bool { return rank(r.Findings[i].Severity) < rank(r.Findings[j].Severity) })
	r.Errors, r.Warnings = 0, 0
	for _, f := range r.Findings {
		switch f.Severity {
		case Error:
			r.Errors++
		case Warning:
			r.Warnings++
		}
	}
	r.Passed = r.Errors == 0
	return r
}

func rank(s Severity) int {
	switch s {
	case Error:
		return 0
	case Warning:
		return 1
	}
	return 2
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

var knownFieldRE = regexp.MustCompile(`^line (\d+): field (\S+) not found in type (\S+)`)

// UnknownKeys decodes path a second time with KnownFields(true) and returns
// one finding per unknown key, with its line.
func UnknownKeys(path string) []Finding {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil // Load reports unreadable files
	}
	dec := yamlv3.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var probe config.Config
	err = dec.Decode(&probe)
	var te *yamlv3.TypeError
	if err == nil || errors.Is(err, io.EOF) || !errors.As(err, &te) {
		return nil
	}
	var out []Finding
	for _, e := range te.Errors {
		m := knownFieldRE.FindStringSubmatch(e)
		if m == nil {
			continue // type errors: Load reports them with the key
		}
		line, _ := strconv.Atoi(m[1])
		out = append(out, Finding{Rule: RuleUnknownKey, Severity: Error, Line: line,
			Message:     fmt.Sprintf("%s line %d: unknown key %q (in %s)", path, line, m[2], sectionOf(m[3])),
			Remediation: "remove the key or fix its spelling; every key is listed in docs/operations.md#configuration"})
	}
	return out
}

func sectionOf(goType string) string {
	return strings.TrimPrefix(goType, "config.")
}

// Text renders r for a terminal.
func (r *Report) Text(w io.Writer) {
	mode := "basic"
	if r.Production {
		mode = "production"
	}
	file := r.File
	if file == "" {
		file = "(defaults and environment only)"
	}
	fmt.Fprintf(w, "config lint (%s): %s\n", mode, file)
	for _, f := range r.Findings {
		fmt.Fprintf(w, "%-7s %s %s\n        fix: %s\n", strings.ToUpper(string(f.Severity)), f.Rule, f.Message, f.Remediation)
	}
	verdict := "PASS"
	if !r.Passed {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "%s: %d error(s), %d warning(s), %d rule(s) checked\n", verdict, r.Errors, r.Warnings, len(r.RulesRun))
}

// JSON renders r as indented JSON.
func (r *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
