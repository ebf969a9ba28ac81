package audit

import "encoding/json"

// Data renders the small metadata object of an event (Event.Data) from key/value pairs
// of identifiers. Never pass a secret.
func Data(kv ...string) string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return string(b)
}
