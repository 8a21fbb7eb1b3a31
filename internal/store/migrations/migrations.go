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

//go:embed postgres/*.sql
var postgresFiles embed.FS

// SQLite returns the SQLite migrations with the files at the root of the FS,
// as goose.NewProvider expects them.
func SQLite() fs.FS { return sub(sqliteFiles, "sqlite") }

// Postgres returns the Postgres migrations, laid out like SQLite's. A
// version number means the same schema step in both dialects.
func Postgres() fs.FS { return sub(postgresFiles, "postgres") }

func sub(files embed.FS, dir string) fs.FS {
	s, err := fs.Sub(files, dir)
	if err != nil {
		// fs.Sub fails only on an invalid path literal, which is a build bug.
		panic("migrations: " + err.Error())
	}
	return s
}
