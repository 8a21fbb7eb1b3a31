package auth

import (
	"regexp"
	"sort"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// Policy kinds: what a rule matches in a create request.
const (
	PolicyImage    = "image"
	PolicyProvider = "provider"
	PolicyNetwork  = "network"
)

// Policy effects.
const (
	EffectAllow = "allow"
	EffectDeny  = "deny"
)

// Rule is one tenant policy rule. Pattern is a Go (RE2) regular expression
// matched against the whole value (it is anchored), so evaluation is linear
// time whatever the pattern.
type Rule struct {
	ID       string
	Tenant   string
	Kind     string
	Effect   string
	Pattern  string
	Priority int // higher is evaluated first
}

// MaxPatternLen bounds a rule pattern.
const MaxPatternLen = 512

// CompileRule validates r and returns its matcher. A pattern that does not
// compile is Invalid: rules are checked when created, never at enforcement.
func CompileRule(r Rule) (*regexp.Regexp, error) {
	switch r.Kind {
	case PolicyImage, PolicyProvider, PolicyNetwork:
	default:
		return nil, errs.New(errs.Invalid, "policy kind must be image, provider or network, got %q", r.Kind)
	}
	if r.Effect != EffectAllow && r.Effect != EffectDeny {
		return nil, errs.New(errs.Invalid, "policy effect must be allow or deny, got %q", r.Effect)
	}
	if r.Pattern == "" || len(r.Pattern) > MaxPatternLen {
		return nil, errs.New(errs.Invalid, "policy pattern must be 1-%d characters", MaxPatternLen)
	}
	re, err := regexp.Compile(`^(?:` + r.Pattern + `)$`)
	if err != nil {
		return nil, errs.New(errs.Invalid, "policy pattern %q does not compile: %v", r.Pattern, err)
	}
	return re, nil
}

// Decision is the result of evaluating rules for one value.
type Decision struct {
	Allowed bool
	Rule    *Rule // the deciding rule; nil when no rule matched
	Reason  string
}

// Evaluate decides whether value (of kind) is allowed by rules: the
// matching rule with the highest priority decides (deny wins a tie). When no
// rule matches, the value is allowed unless allow rules of that kind exist
// (then the allow rules are a list and the value is not on it). Rules whose
// pattern no longer compiles deny.
func Evaluate(rules []Rule, kind, value string) Decision {
	return EvaluateNames(rules, kind, []string{value})
}

// EvaluateNames is Evaluate for a value known by several names (an image:
// familiar, fully qualified, with and without tag): a rule matches when its
// pattern matches any of them, so no spelling of the value dodges a deny and
// any spelling satisfies an allow. names[0] is the one shown in reasons.
func EvaluateNames(rules []Rule, kind string, names []string) Decision {
	value := ""
	if len(names) > 0 {
		value = names[0]
	}
	var cands []Rule
	hasAllow := false
	for _, r := range rules {
		if r.Kind == kind {
			cands = append(cands, r)
			hasAllow = hasAllow || r.Effect == EffectAllow
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].Priority != cands[j].Priority {
			return cands[i].Priority > cands[j].Priority
		}
		return cands[i].Effect == EffectDeny && cands[j].Effect != EffectDeny
	})
	for i := range cands {
		r := &cands[i]
		re, err := CompileRule(*r)
		if err != nil {
			return Decision{Allowed: false, Rule: r, Reason: "policy " + r.ID + " is invalid"}
		}
		if matchAny(re, names) {
			return Decision{Allowed: r.Effect == EffectAllow, Rule: r, Reason: kind + " " + value + " " + r.Effect + "ed by policy " + r.ID}
		}
	}
	if hasAllow {
		return Decision{Allowed: false, Reason: kind + " " + value + " matches no allow policy"}
	}
	return Decision{Allowed: true}
}

func matchAny(re *regexp.Regexp, names []string) bool {
	for _, n := range names {
		if re.MatchString(n) {
			return true
		}
	}
	return false
}
