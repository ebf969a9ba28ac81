package proxy

// RouteInfo is one route registered in the HTTP engine: a method and gin's path template
// (":param" and "*param" segments as registered).
type RouteInfo struct {
	Method string
	Path   string
}

// Routes lists every registered route, of both handlers. The OpenAPI test compares it with
// docs/openapi.yaml.
func (s *Server) Routes() []RouteInfo {
	rs := s.engine.Routes()
	if s.cfg.SeparateOps {
		rs = append(rs, s.ops.Routes()...)
	}
	out := make([]RouteInfo, 0, len(rs))
	for _, r := range rs {
		out = append(out, RouteInfo{Method: r.Method, Path: r.Path})
	}
	return out
}
