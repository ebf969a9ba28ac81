package kms

// Map returns a ring of f applied to each KEK of r (the current one and the previous
// ones), for wrappers such as metrics instrumentation. f must return a KEK with the same
// ID. The new ring owns the KEKs f returns: close it instead of r.
func (r *Ring) Map(f func(KEK) KEK) *Ring {
	m := &Ring{current: f(r.current)}
	for _, p := range r.previous {
		m.previous = append(m.previous, f(p))
	}
	return m
}
