package api

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
)

// auditAdmin records one call to an admin route: who, what, from where
// (the TCP peer, not a forwarded-for header), and the result status. Denied
// attempts are recorded too. Bodies are never recorded; handlers add a
// target and a secret-free detail through reqInfo.
func (s *server) auditAdmin(r *http.Request, ri *reqInfo, status int) {
	if s.sec.gov == nil {
		return
	}
	if status == 0 {
		status = http.StatusOK
	}
	p := ri.principal
	e := &store.AuditEvent{
		At: time.Now().UTC(), Kind: store.AuditAdmin, Actor: p.Actor(), Action: ri.route,
		Target: ri.auditTarget, Detail: ri.auditDetail, RemoteAddr: r.RemoteAddr,
		Result: strconv.Itoa(status), RequestID: ri.id,
	}
	if p != nil {
		e.TenantID = p.Tenant
		if p.Role == RolePublic {
			e.Actor = "anonymous"
		}
	}
	if t := r.PathValue("tenant"); t != "" && status < 400 {
		e.TenantID = t
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := s.sec.gov.Audit().Append(ctx, e); err != nil {
		s.log.ErrorContext(ctx, "admin audit write failed", "err", err, "request_id", ri.id)
	}
}

// auditJSON is one exported audit row.
type auditJSON struct {
	Seq        int64  `json:"seq"`
	At         string `json:"at"`
	Kind       string `json:"kind"`
	TenantID   string `json:"tenant_id"`
	Actor      string `json:"actor"`
	Action     string `json:"action"`
	Target     string `json:"target,omitempty"`
	Detail     string `json:"detail,omitempty"`
	RemoteAddr string `json:"remote_addr,omitempty"`
	Result     string `json:"result"`
	RequestID  string `json:"request_id,omitempty"`
}

var auditCSVHeader = []string{"seq", "at", "kind", "tenant_id", "actor", "action", "target", "detail", "remote_addr", "result", "request_id"}

// maxAuditExport bounds one export; continue with ?after=<last seq>.
const maxAuditExport = 100000

// exportAudit streams audit events as JSON lines (default) or CSV, filtered
// by ?tenant=, ?kind=op|admin, ?since=<RFC 3339>, ?after=<seq>, ?limit=.
// A tenant admin gets its own tenant only.
func (s *server) exportAudit(w http.ResponseWriter, r *http.Request) error {
	gov, err := s.governance()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	tenant, err := tenantScope(r, q.Get("tenant"))
	if err != nil {
		return err
	}
	f := store.AuditFilter{TenantID: tenant, Kind: q.Get("kind"), Limit: maxAuditExport}
	if f.Kind != "" && f.Kind != store.AuditOp && f.Kind != store.AuditAdmin {
		return errs.New(errs.Invalid, "kind must be op or admin")
	}
	if v := q.Get("since"); v != "" {
		if f.Since, err = time.Parse(time.RFC3339, v); err != nil {
			return errs.New(errs.Invalid, "since must be an RFC 3339 time")
		}
	}
	if v := q.Get("after"); v != "" {
		if f.AfterSeq, err = strconv.ParseInt(v, 10, 64); err != nil || f.AfterSeq < 0 {
			return errs.New(errs.Invalid, "after must be a sequence number")
		}
	}
	if n, err := queryInt(r, "limit", 0); err != nil {
		return err
	} else if n > 0 && n < f.Limit {
		f.Limit = n
	}
	format := q.Get("format")
	if format == "" {
		format = "jsonl"
	}
	if format != "jsonl" && format != "csv" {
		return errs.New(errs.Invalid, "format must be jsonl or csv")
	}
	evs, err := gov.Audit().List(r.Context(), f)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="stacyvm-audit.csv"`)
		cw := csv.NewWriter(w)
		_ = cw.Write(auditCSVHeader)
		for _, e := range evs {
			j := toAuditJSON(e)
			_ = cw.Write([]string{strconv.FormatInt(j.Seq, 10), j.At, j.Kind, csvCell(j.TenantID), csvCell(j.Actor),
				csvCell(j.Action), csvCell(j.Target), csvCell(j.Detail), csvCell(j.RemoteAddr), csvCell(j.Result), csvCell(j.RequestID)})
		}
		cw.Flush()
		return nil
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	for _, e := range evs {
		_ = enc.Encode(toAuditJSON(e))
	}
	return nil
}

func toAuditJSON(e *store.AuditEvent) auditJSON {
	return auditJSON{Seq: e.Seq, At: e.At.UTC().Format(time.RFC3339Nano), Kind: e.Kind, TenantID: e.TenantID,
		Actor: e.Actor, Action: e.Action, Target: e.Target, Detail: e.Detail, RemoteAddr: e.RemoteAddr,
		Result: e.Result, RequestID: e.RequestID}
}

// csvCell defuses spreadsheet formula injection: a cell starting with
// = + - @ (or a tab/CR) is prefixed with a quote.
func csvCell(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}
