package main

import (
	"context"
	"io"

	"github.com/authpipe/authpipe-proxy/internal/app"
)

// open builds the app from the loaded configuration; logs go to logOut.
func (c *call) open(ctx context.Context, logOut io.Writer, opts ...app.Option) (*app.App, error) {
	return app.New(ctx, c.cfg, append([]app.Option{app.WithLogOutput(logOut)}, opts...)...)
}

// openReady opens the app and brings its database up to date: the current schema, the
// default workspace and the bootstrap key. The caller closes it.
func (c *call) openReady(ctx context.Context) (*app.App, error) {
	a, err := c.open(ctx, io.Discard)
	if err != nil {
		return nil, err
	}
	if err := a.Bootstrap(ctx); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// openExisting opens what exists and creates nothing: no database file, no local KEK
// file, no migration (read-only commands).
func (c *call) openExisting(ctx context.Context) (*app.App, error) {
	return c.open(ctx, io.Discard, app.WithExisting())
}
