// Package cptest is a reference control-plane server for tests and local development. It
// speaks the protocol of docs/control-plane.md: it checks the bearer token, records every
// request (method, path, headers, body) for later inspection, keeps the events it
// receives, and serves a ConfigDocument signed with its own Ed25519 key. It can be
// switched down (503 to everything) and up, and made to serve a tampered signature.
//
// It is a fake: it keeps everything in memory and must never be used in production.
package cptest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"

	"github.com/authpipe/authpipe-proxy/controlplane"
)

// Request is one recorded request.
type Request struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
	Status int // what the server answered
}

// Server is the reference control plane. Handler serves it; NewServer also starts it on
// a loopback httptest listener.
type Server struct {
	token string
	priv  ed25519.PrivateKey
	pub   ed25519.PublicKey

	mu       sync.Mutex
	requests []Request
	events   []controlplane.Event
	seen     map[string]bool
	down     bool
	tamper   bool
	signed   []byte // the SignedConfig body served as is (SetSignedPayload), nil = none
	etag     string
	doc      *controlplane.ConfigDocument // SetConfig's document, signed per audience
	perAud   map[string]signedDoc         // by audience
	changed  chan struct{}

	*httptest.Server // set by NewServer only
}

// New returns a control plane that accepts token, with a fresh signing key.
func New(token string) (*Server, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Server{token: token, priv: priv, pub: pub, seen: map[string]bool{}, changed: make(chan struct{})}, nil
}

// NewServer is New plus a started httptest server; Close it when done.
func NewServer(token string) (*Server, error) {
	s, err := New(token)
	if err != nil {
		return nil, err
	}
	s.Server = httptest.NewServer(s.Handler())
	return s, nil
}

// PublicKey is the key to pin in the data plane.
func (s *Server) PublicKey() ed25519.PublicKey { return s.pub }

// PublicKeyBase64 is PublicKey as AUTHPIPE_CONTROL_PLANE_PUBLIC_KEY takes it.
func (s *Server) PublicKeyBase64() string { return base64.StdEncoding.EncodeToString(s.pub) }

// SetDown makes every request answer 503 (true) or be served normally (false).
func (s *Server) SetDown(down bool) { s.mu.Lock(); s.down = down; s.mu.Unlock() }

// SetTamper makes the served configuration carry a signature that does not verify.
func (s *Server) SetTamper(t bool) { s.mu.Lock(); s.tamper = t; s.mu.Unlock() }

// SetConfig serves doc from now on, signed with the server's key as a control plane
// issues it: an empty Audience becomes the deployment id of the pulling data plane (its
// Authpipe-Deployment-Id header), a zero IssuedAt the time of signing and a zero
// ExpiresAt IssuedAt plus one hour. Each audience's document is signed once.
func (s *Server) SetConfig(doc controlplane.ConfigDocument) error {
	if _, err := json.Marshal(doc); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.doc, s.perAud, s.signed, s.etag = &doc, map[string]signedDoc{}, nil, ""
	return nil
}

// signedDoc is the SetConfig document as signed for one audience.
type signedDoc struct {
	body, etag string
	renewAt    time.Time // zero: never (the document's times were given)
}

// signedFor returns the SetConfig document signed for audience, and its ETag; a document
// whose times the server chose is signed again after half its lifetime, as a control
// plane must do. s.mu is held.
func (s *Server) signedFor(audience string) ([]byte, string) {
	if got, ok := s.perAud[audience]; ok && (got.renewAt.IsZero() || time.Now().Before(got.renewAt)) {
		return []byte(got.body), got.etag
	}
	doc := *s.doc
	var renewAt time.Time
	if doc.IssuedAt.IsZero() && doc.ExpiresAt.IsZero() {
		renewAt = time.Now().Add(30 * time.Minute)
	}
	if doc.Audience == "" {
		doc.Audience = audience
	}
	if doc.IssuedAt.IsZero() {
		doc.IssuedAt = time.Now().UTC().Truncate(time.Second)
	}
	if doc.ExpiresAt.IsZero() {
		doc.ExpiresAt = doc.IssuedAt.Add(time.Hour)
	}
	payload, _ := json.Marshal(doc)
	body, _ := json.Marshal(controlplane.SignedConfig{Payload: payload, Signature: s.Sign(payload), KeyID: controlplane.KeyIDOf(s.pub)})
	etag := strconv.Quote(fmt.Sprintf("%x", ed25519.Sign(s.priv, body)[:8]))
	s.perAud[audience] = signedDoc{body: string(body), etag: etag, renewAt: renewAt}
	return body, etag
}

// Sign signs payload with the server's key.
func (s *Server) Sign(payload []byte) []byte { return ed25519.Sign(s.priv, payload) }

// SetSignedPayload serves payload with the given signature as is (for documents that
// the controlplane types cannot express, such as unknown fields).
func (s *Server) SetSignedPayload(payload, sig []byte) error {
	body, err := json.Marshal(controlplane.SignedConfig{Payload: payload, Signature: sig, KeyID: controlplane.KeyIDOf(s.pub)})
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signed, s.doc = body, nil
	s.etag = strconv.Quote(fmt.Sprintf("%x", ed25519.Sign(s.priv, body)[:8]))
	return nil
}

// Requests returns a copy of every request received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	copy(out, s.requests)
	return out
}

// Events returns every distinct event accepted (deduplicated by id), in arrival order.
func (s *Server) Events() []controlplane.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]controlplane.Event, len(s.events))
	copy(out, s.events)
	return out
}

// WaitEvents waits until pred holds for the accepted events, or ctx ends.
func (s *Server) WaitEvents(ctx context.Context, pred func([]controlplane.Event) bool) ([]controlplane.Event, error) {
	for {
		s.mu.Lock()
		evs := make([]controlplane.Event, len(s.events))
		copy(evs, s.events)
		ch := s.changed
		s.mu.Unlock()
		if pred(evs) {
			return evs, nil
		}
		select {
		case <-ctx.Done():
			return evs, ctx.Err()
		case <-ch:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Handler is the control plane's HTTP surface.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		rec := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body}
		rec.Status = s.serve(w, r, body)
		s.mu.Lock()
		s.requests = append(s.requests, rec)
		s.mu.Unlock()
	})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, body []byte) int {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		return reply(w, http.StatusServiceUnavailable, nil)
	}
	want := []byte("Bearer " + s.token)
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
		return reply(w, http.StatusUnauthorized, nil)
	}
	switch {
	case r.URL.Path == controlplane.EventsPath && r.Method == http.MethodPost:
		return s.handleEvents(w, body)
	case r.URL.Path == controlplane.ConfigPath && r.Method == http.MethodGet:
		return s.config(w, r)
	}
	return reply(w, http.StatusNotFound, nil)
}

func (s *Server) handleEvents(w http.ResponseWriter, body []byte) int {
	var batch struct {
		Events []controlplane.Event `json:"events"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&batch); err != nil {
		return reply(w, http.StatusBadRequest, nil)
	}
	for _, e := range batch.Events {
		if e.Validate() != nil {
			return reply(w, http.StatusBadRequest, nil)
		}
	}
	s.mu.Lock()
	for _, e := range batch.Events {
		if !s.seen[e.ID] {
			s.seen[e.ID] = true
			s.events = append(s.events, e)
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return reply(w, http.StatusAccepted, []byte(`{"accepted":`+strconv.Itoa(len(batch.Events))+`}`))
}

func (s *Server) config(w http.ResponseWriter, r *http.Request) int {
	s.mu.Lock()
	signed, etag, tamper := s.signed, s.etag, s.tamper
	if s.doc != nil {
		signed, etag = s.signedFor(r.Header.Get(controlplane.DeploymentHeader))
	}
	s.mu.Unlock()
	if signed == nil {
		return reply(w, http.StatusNotFound, nil)
	}
	if tamper {
		signed, etag = tampered(signed), `"tampered"`
	}
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		return reply(w, http.StatusNotModified, nil)
	}
	return reply(w, http.StatusOK, signed)
}

// tampered is what an attacker on the network path would serve: the signed document with
// a provider of its own injected and the version raised, under the original signature.
func tampered(signed []byte) []byte {
	var sc controlplane.SignedConfig
	_ = json.Unmarshal(signed, &sc)
	var doc controlplane.ConfigDocument
	_ = json.Unmarshal(sc.Payload, &doc)
	doc.Version++
	if len(doc.Workspaces) == 0 {
		doc.Workspaces = []controlplane.WorkspaceConfig{{WorkspaceID: "ws_default"}}
	}
	doc.Workspaces[0].Providers = append(doc.Workspaces[0].Providers, controlplane.ProviderConfigDoc{
		Key: "injected", Template: "github", ClientID: "attacker", TokenURL: "https://attacker.example/token"})
	sc.Payload, _ = json.Marshal(doc)
	out, _ := json.Marshal(sc)
	return out
}

func reply(w http.ResponseWriter, status int, body []byte) int {
	if body != nil {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return status
}
