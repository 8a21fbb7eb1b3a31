package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// classify turns a driver error into a classified one with a caller-safe
// message; the driver error stays the cause, for logs. Callers override the
// message for classes they can name better (a duplicate id, say).
func classify(ctx context.Context, err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	if format == "" {
		format = "database error"
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return errs.Wrap(errs.Timeout, err, "database operation cancelled")
	}
	if ctx.Err() != nil {
		// pgx reports a query cancelled by the context as a server error
		// (57014) or a closed connection; keep ctx.Err() in the chain so
		// callers can errors.Is it.
		return errs.Wrap(errs.Timeout, errors.Join(ctx.Err(), err), "database operation cancelled")
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return classifyCode(err, pe.Code, format, args...)
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, puddle.ErrClosedPool), pgconn.SafeToRetry(err):
		return errs.Wrap(errs.Unavailable, err, "database unavailable")
	case pgconn.Timeout(err):
		return errs.Wrap(errs.Timeout, err, "database operation timed out")
	case errors.Is(err, pgx.ErrTxClosed):
		return errs.Wrap(errs.Unavailable, err, "database unavailable")
	}
	return errs.Wrap(errs.Internal, err, format, args...)
}

// classifyCode maps a SQLSTATE (Appendix A of the Postgres manual) to a class.
func classifyCode(err error, code, format string, args ...any) error {
	switch {
	case code == "23505": // unique_violation
		return errs.Wrap(errs.Conflict, err, format, args...)
	case strings.HasPrefix(code, "23"), // other integrity violations: foreign key, not null, check
		strings.HasPrefix(code, "22"): // data exceptions: out of range, invalid text (NUL bytes), ...
		return errs.Wrap(errs.Invalid, err, format, args...)
	case code == "40001", code == "40P01", code == "55P03": // serialization failure, deadlock, lock not available
		return errs.Wrap(errs.Unavailable, err, "database busy")
	case code == "57014": // query_canceled (statement_timeout, or a cancel request)
		return errs.Wrap(errs.Timeout, err, "database operation timed out")
	case strings.HasPrefix(code, "08"), // connection exceptions
		strings.HasPrefix(code, "53"), // insufficient resources: too many connections, disk full
		strings.HasPrefix(code, "57"), // operator intervention: shutdown, cannot connect now
		strings.HasPrefix(code, "28"), // invalid authorization
		code == "3D000",               // invalid_catalog_name: the database does not exist
		code == "25006":               // read_only_sql_transaction: a standby answered
		return errs.Wrap(errs.Unavailable, err, "database unavailable")
	}
	return errs.Wrap(errs.Internal, err, format, args...)
}

// isCode reports whether err carries the SQLSTATE code.
func isCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// classified reports whether err already carries a class (a corrupt row
// found while scanning, say), so it is passed on rather than reclassified.
func classified(err error) bool {
	var e *errs.Error
	return errors.As(err, &e)
}
