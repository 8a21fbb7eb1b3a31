package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

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
		// SQLite reports a statement interrupted by the context as
		// SQLITE_INTERRUPT; keep ctx.Err() in the chain so callers can
		// errors.Is it.
		return errs.Wrap(errs.Timeout, errors.Join(ctx.Err(), err), "database operation cancelled")
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch code := se.Code(); code & 0xff { // extended codes carry the primary in the low byte
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return errs.Wrap(errs.Unavailable, err, "database busy")
		case sqlite3.SQLITE_CONSTRAINT:
			if code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || code == sqlite3.SQLITE_CONSTRAINT_UNIQUE {
				return errs.Wrap(errs.Conflict, err, format, args...)
			}
			return errs.Wrap(errs.Invalid, err, format, args...)
		case sqlite3.SQLITE_NOTADB:
			return errs.Wrap(errs.Invalid, err, "file is not a SQLite database")
		case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_FULL,
			sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_PROTOCOL,
			sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_NOLFS:
			return errs.Wrap(errs.Unavailable, err, "database unavailable")
		}
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) {
		return errs.Wrap(errs.Unavailable, err, "database unavailable")
	}
	return errs.Wrap(errs.Internal, err, format, args...)
}

// isBusy reports whether err is SQLite's "database is locked" (any variant).
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}
