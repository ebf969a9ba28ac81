package pkcs11

import "log/slog"

// Options control Open. The zero value is ready to use.
type Options struct {
	// Logger receives warnings (a world-readable PIN file, a key that was imported rather
	// than generated on the token). Default: discard.
	Logger *slog.Logger
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}
