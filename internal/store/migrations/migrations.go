// Package migrations embeds StacyVM's versioned schema migrations, one
// directory per SQL dialect, in goose format (-- +goose Up / -- +goose Down).
// Files are append-only: a released migration is never edited, a change is a
// new numbered file.
package migrations

import (
	"embed"
	"io/fs"
)

//go:embed sqlite/*.sql
var sqliteFiles embed.FS

// SQLite returns the SQLite migrations with the files at the root of the FS,
// as goose.NewProvider expects them.
func SQLite() fs.FS {
	sub, err := fs.Sub(sqliteFiles, "sqlite")
	if err != nil {
		// fs.Sub fails only on an invalid path literal, which is a build bug.
		panic("migrations: " + err.Error())
	}
	return sub
}
