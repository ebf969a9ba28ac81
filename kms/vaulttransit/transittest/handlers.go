package transittest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// request is one parsed API call.
type request struct {
	op        string
	mount     string // full mount path
	keyName   string
	authMount string
	body      map[string]any
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	req, status, msg := s.route(w, r)
	s.mu.Lock()
	s.calls[req.op]++
	delay := s.delay
	var injected int
	if s.failN > 0 {
		s.failN--
		injected = s.failCode
	}
	s.mu.Unlock()

	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if injected != 0 {
		writeErrors(w, injected, injectedMessage(injected))
		return
	}
	if status != 0 {
		writeErrors(w, status, msg)
		return
	}
	if req.op == OpLogin {
		s.login(w, req)
		return
	}
	if !s.authorized(r, req.op) {
		writeErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	if req.op == OpMounts {
		s.listMounts(w, r)
		return
	}
	s.transit(w, r, req)
}

func injectedMessage(code int) string {
	switch code {
	case http.StatusServiceUnavailable:
		return "Vault is sealed"
	case http.StatusTooManyRequests:
		return "request path \"transit\": rate limit quota exceeded"
	default:
		return "injected failure"
	}
}

// route maps method and path (namespace header prepended, as Vault does) to an operation.
func (s *Server) route(w http.ResponseWriter, r *http.Request) (request, int, string) {
	req := request{op: OpOther}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		return req, http.StatusNotFound, "404 page not found"
	}
	full := strings.Trim(strings.Trim(r.Header.Get("X-Vault-Namespace"), "/")+"/"+rest, "/")
	write := r.Method == http.MethodPost || r.Method == http.MethodPut
	if write {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodySize))
		if err != nil {
			return req, http.StatusRequestEntityTooLarge, "request body too large"
		}
		if len(body) > 0 {
			if err := json.Unmarshal(body, &req.body); err != nil {
				return req, http.StatusBadRequest, "failed to parse JSON input: " + err.Error()
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if full == "sys/mounts" || strings.HasSuffix(full, "/sys/mounts") {
		req.op = OpMounts
		if r.Method != http.MethodGet {
			return req, http.StatusMethodNotAllowed, "unsupported operation"
		}
		return req, 0, ""
	}
	if m, ok := strings.CutSuffix(full, "/login"); ok && (strings.HasPrefix(m, "auth/") || strings.Contains(m, "/auth/")) {
		req.op, req.authMount = OpLogin, m
		if !write {
			return req, http.StatusMethodNotAllowed, "unsupported operation"
		}
		if _, ok := s.auths[m]; !ok {
			return req, http.StatusBadRequest, "no handler for route \"" + full + "\". route entry not found."
		}
		return req, 0, ""
	}
	for mount := range s.mounts {
		tail, ok := strings.CutPrefix(full, mount+"/")
		if !ok {
			continue
		}
		req.mount = mount
		parts := strings.Split(tail, "/")
		switch {
		case len(parts) == 2 && parts[0] == "encrypt" && write:
			req.op, req.keyName = OpEncrypt, parts[1]
		case len(parts) == 2 && parts[0] == "decrypt" && write:
			req.op, req.keyName = OpDecrypt, parts[1]
		case len(parts) == 2 && parts[0] == "keys" && r.Method == http.MethodGet:
			req.op, req.keyName = OpReadKey, parts[1]
		case len(parts) == 2 && parts[0] == "keys" && write:
			req.op, req.keyName = OpWriteKey, parts[1]
		case len(parts) == 2 && parts[0] == "keys" && r.Method == http.MethodDelete:
			req.op, req.keyName = OpDeleteKey, parts[1]
		case len(parts) == 3 && parts[0] == "keys" && parts[2] == "rotate" && write:
			req.op, req.keyName = OpRotate, parts[1]
		case len(parts) == 3 && parts[0] == "keys" && parts[2] == "config" && write:
			req.op, req.keyName = OpConfig, parts[1]
		default:
			return req, http.StatusMethodNotAllowed, "unsupported operation"
		}
		if req.keyName == "" {
			return req, http.StatusBadRequest, "missing name"
		}
		return req, 0, ""
	}
	return req, http.StatusNotFound, "no handler for route \"" + full + "\". route entry not found."
}

func (s *Server) authorized(r *http.Request, op string) bool {
	tok := r.Header.Get("X-Vault-Token")
	if tok == "" {
		return false
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.rootToken)) == 1 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[sha256.Sum256([]byte(tok))]
	return ok && s.now().Before(exp) && !s.forbidden[op]
}

func (s *Server) login(w http.ResponseWriter, req request) {
	str := func(k string) string { v, _ := req.body[k].(string); return v }
	s.mu.Lock()
	a := s.auths[req.authMount]
	forbidden := s.forbidden[OpLogin]
	s.mu.Unlock()
	var ok bool
	switch a.kind {
	case "approle":
		if str("role_id") == "" {
			writeErrors(w, http.StatusBadRequest, "missing role_id")
			return
		}
		ok = eq(str("role_id"), a.roleOrID) && eq(str("secret_id"), a.secret)
	case "kubernetes":
		ok = eq(str("role"), a.roleOrID) && eq(str("jwt"), a.secret)
	}
	if !ok || forbidden {
		if a.kind == "approle" {
			writeErrors(w, http.StatusBadRequest, "invalid role or secret ID")
		} else {
			writeErrors(w, http.StatusForbidden, "permission denied")
		}
		return
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		writeErrors(w, http.StatusInternalServerError, "entropy")
		return
	}
	tok := "hvs." + base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	s.tokens[sha256.Sum256([]byte(tok))] = s.now().Add(s.loginTTL)
	ttl := int(s.loginTTL / time.Second)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"request_id": "fake", "lease_id": "", "renewable": false, "lease_duration": 0,
		"data": nil, "wrap_info": nil, "warnings": nil,
		"auth": map[string]any{
			"client_token": tok, "accessor": "fake-accessor", "policies": []string{"default", "authpipe"},
			"token_policies": []string{"default", "authpipe"}, "lease_duration": ttl, "renewable": true,
			"metadata": map[string]string{"role_name": a.roleOrID}, "entity_id": "", "token_type": "service", "orphan": true,
		},
	})
}

func eq(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func (s *Server) transit(w http.ResponseWriter, r *http.Request, req request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := s.mounts[req.mount]
	k := keys[req.keyName]
	str := func(name string) string { v, _ := req.body[name].(string); return v }
	num := func(name string) (int, bool) {
		switch v := req.body[name].(type) {
		case float64:
			return int(v), v == float64(int(v))
		case string:
			n, err := strconv.Atoi(v)
			return n, err == nil
		case nil:
			return 0, true
		}
		return 0, false
	}
	aad := func() ([]byte, bool) {
		if s.ignoreAAD {
			return nil, true
		}
		b, err := base64.StdEncoding.DecodeString(str("associated_data"))
		return b, err == nil
	}

	switch req.op {
	case OpEncrypt:
		pt, err := base64.StdEncoding.DecodeString(str("plaintext"))
		if err != nil {
			writeErrors(w, http.StatusBadRequest, "failed to base64-decode plaintext")
			return
		}
		ad, ok := aad()
		if !ok {
			writeErrors(w, http.StatusBadRequest, "failed to base64-decode associated_data")
			return
		}
		if k == nil { // Vault upserts on encrypt (given the "create" capability)
			k = s.newKey()
			keys[req.keyName] = k
		}
		v, ok := num("key_version")
		if !ok || v < 0 || v > len(k.versions) {
			writeErrors(w, http.StatusBadRequest, "invalid key version")
			return
		}
		if v == 0 {
			v = len(k.versions)
		}
		gcm := newGCM(k.versions[v-1])
		nonce := make([]byte, gcm.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			writeErrors(w, http.StatusInternalServerError, "entropy")
			return
		}
		sealed := gcm.Seal(nonce, nonce, pt, ad)
		writeData(w, map[string]any{
			"ciphertext":  "vault:v" + strconv.Itoa(v) + ":" + base64.StdEncoding.EncodeToString(sealed),
			"key_version": v,
		})
	case OpDecrypt:
		ct := str("ciphertext")
		if ct == "" {
			writeErrors(w, http.StatusBadRequest, "missing ciphertext to decrypt")
			return
		}
		if k == nil {
			writeErrors(w, http.StatusBadRequest, "encryption key not found")
			return
		}
		ad, ok := aad()
		if !ok {
			writeErrors(w, http.StatusBadRequest, "failed to base64-decode associated_data")
			return
		}
		pt, status, msg := k.decrypt(ct, ad)
		if status != 0 {
			writeErrors(w, status, msg)
			return
		}
		writeData(w, map[string]any{"plaintext": base64.StdEncoding.EncodeToString(pt)})
	case OpReadKey:
		if k == nil {
			writeErrors(w, http.StatusNotFound)
			return
		}
		writeData(w, k.metadata(req.keyName))
	case OpWriteKey:
		if typ := str("type"); typ != "" && typ != "aes256-gcm96" {
			writeErrors(w, http.StatusBadRequest, "transittest supports only aes256-gcm96 keys, not "+typ)
			return
		}
		if k == nil {
			k = s.newKey()
			keys[req.keyName] = k
		}
		writeData(w, k.metadata(req.keyName))
	case OpRotate:
		if k == nil {
			writeErrors(w, http.StatusBadRequest, "encryption key not found")
			return
		}
		s.rotate(k)
		writeData(w, k.metadata(req.keyName))
	case OpDeleteKey:
		switch {
		case k == nil:
			w.WriteHeader(http.StatusNoContent)
		case !k.deletable:
			writeErrors(w, http.StatusBadRequest, "deletion is not allowed for this key")
		default:
			delete(keys, req.keyName)
			w.WriteHeader(http.StatusNoContent)
		}
	case OpConfig:
		if k == nil {
			writeErrors(w, http.StatusBadRequest, "encryption key not found")
			return
		}
		if _, set := req.body["min_decryption_version"]; set {
			v, ok := num("min_decryption_version")
			switch {
			case !ok || v < 0:
				writeErrors(w, http.StatusBadRequest, "min decryption version must be a positive integer")
				return
			case v > len(k.versions):
				writeErrors(w, http.StatusBadRequest, "cannot set min decryption version of "+strconv.Itoa(v)+", latest key version is "+strconv.Itoa(len(k.versions)))
				return
			case v == 0:
				v = 1
			}
			k.minDecrypt = v
		}
		if v, set := req.body["deletion_allowed"]; set {
			b, ok := v.(bool)
			if s, isStr := v.(string); isStr {
				b, ok = s == "true", s == "true" || s == "false"
			}
			if !ok {
				writeErrors(w, http.StatusBadRequest, "deletion_allowed must be a boolean")
				return
			}
			k.deletable = b
		}
		writeData(w, k.metadata(req.keyName))
	default:
		writeErrors(w, http.StatusMethodNotAllowed, "unsupported operation")
	}
}

// listMounts answers GET sys/mounts with the transit mounts of the request's namespace.
func (s *Server) listMounts(w http.ResponseWriter, r *http.Request) {
	ns := strings.Trim(r.Header.Get("X-Vault-Namespace"), "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]any{}
	for m := range s.mounts {
		rel := m
		if ns != "" {
			var ok bool
			if rel, ok = strings.CutPrefix(m, ns+"/"); !ok {
				continue
			}
		}
		out[rel+"/"] = map[string]any{"type": "transit", "description": "", "accessor": "transit_fake",
			"config": map[string]any{}, "options": nil, "local": false, "seal_wrap": false}
	}
	writeData(w, out)
}

// decrypt follows Transit's checks in Transit's order, with its messages.
func (k *key) decrypt(ct string, ad []byte) ([]byte, int, string) {
	rest, ok := strings.CutPrefix(ct, "vault:v")
	if !ok {
		return nil, http.StatusBadRequest, "invalid ciphertext: no prefix"
	}
	num, body, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, http.StatusBadRequest, "invalid ciphertext: wrong number of fields"
	}
	v, err := strconv.Atoi(num)
	if err != nil {
		return nil, http.StatusBadRequest, "invalid ciphertext: version number could not be decoded"
	}
	if v == 0 { // Transit reads v0 as v1 (ciphertexts from before versioning)
		v = 1
	}
	if v > len(k.versions) {
		return nil, http.StatusBadRequest, "invalid ciphertext: version is too new"
	}
	if v < k.minDecrypt {
		return nil, http.StatusBadRequest, "ciphertext or signature version is disallowed by policy (too old)"
	}
	sealed, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		return nil, http.StatusBadRequest, "invalid ciphertext: could not decode base64"
	}
	gcm := newGCM(k.versions[v-1])
	if len(sealed) < gcm.NonceSize()+gcm.Overhead() {
		return nil, http.StatusBadRequest, "invalid ciphertext: unable to decrypt"
	}
	pt, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], ad)
	if err != nil {
		return nil, http.StatusBadRequest, "cipher: message authentication failed"
	}
	return pt, 0, ""
}

func (k *key) metadata(name string) map[string]any {
	versions := map[string]int64{}
	for i := k.minDecrypt - 1; i < len(k.versions); i++ {
		versions[strconv.Itoa(i+1)] = k.created[i].Unix()
	}
	return map[string]any{
		"name": name, "type": "aes256-gcm96", "keys": versions,
		"latest_version": len(k.versions), "min_decryption_version": k.minDecrypt, "min_encryption_version": 0,
		"deletion_allowed": k.deletable, "derived": false, "exportable": false, "allow_plaintext_backup": false,
		"supports_encryption": true, "supports_decryption": true, "supports_derivation": true,
		"supports_signing": false, "auto_rotate_period": 0, "imported_key": false,
	}
}

func newGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // keys are always 32 bytes here
	}
	gcm, err := cipher.NewGCM(block) // 96-bit nonce, 128-bit tag, as Transit's aes256-gcm96
	if err != nil {
		panic(err)
	}
	return gcm
}

func writeData(w http.ResponseWriter, data map[string]any) {
	writeJSON(w, http.StatusOK, map[string]any{
		"request_id": "fake", "lease_id": "", "renewable": false, "lease_duration": 0,
		"data": data, "wrap_info": nil, "warnings": nil, "auth": nil,
	})
}

func writeErrors(w http.ResponseWriter, status int, errs ...string) {
	if errs == nil {
		errs = []string{}
	}
	writeJSON(w, status, map[string]any{"errors": errs})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
