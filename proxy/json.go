package proxy

import "encoding/json"

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// dataJSON renders the small metadata object of an audit event from key/value pairs of
// identifiers. Never pass a secret.
func dataJSON(kv ...string) string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return string(b)
}
