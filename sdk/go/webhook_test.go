package authpipe

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func sign(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "v1=" + KeyID(secret) + ":" + hex.EncodeToString(m.Sum(nil))
}

func TestWebhookVerifier(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := []byte(`{"type":"connection.needs_reauth","data":{"connection_id":"conn_1"}}`)
	oldS, newS := "whsec_old", "whsec_new"
	v := WebhookVerifier{Secrets: []string{newS}, Now: func() time.Time { return now }}

	good := "t=" + ts + "," + sign(newS, ts, body)
	if err := v.Verify(good, body); err != nil {
		t.Fatal(err)
	}
	rotating := "t=" + ts + "," + sign(oldS, ts, body) + "," + sign(newS, ts, body)
	if err := (WebhookVerifier{Secrets: []string{oldS}, Now: v.Now}).Verify(rotating, body); err != nil {
		t.Fatal("a receiver still on the old secret refuses a rotation delivery:", err)
	}
	if err := v.Verify(rotating, body); err != nil {
		t.Fatal("a receiver on the new secret refuses a rotation delivery:", err)
	}
	bad := map[string]string{
		"tampered body":    good,
		"wrong secret":     "t=" + ts + "," + sign("whsec_other", ts, body),
		"stale":            "t=" + strconv.FormatInt(now.Add(-10*time.Minute).Unix(), 10) + "," + sign(newS, strconv.FormatInt(now.Add(-10*time.Minute).Unix(), 10), body),
		"future":           "t=" + strconv.FormatInt(now.Add(10*time.Minute).Unix(), 10) + "," + sign(newS, strconv.FormatInt(now.Add(10*time.Minute).Unix(), 10), body),
		"no timestamp":     sign(newS, ts, body),
		"no signature":     "t=" + ts,
		"kid of another":   "t=" + ts + ",v1=" + KeyID(oldS) + ":" + strings.SplitN(sign(newS, ts, body), ":", 2)[1],
		"signature w/o id": "t=" + ts + ",v1=" + strings.SplitN(sign(newS, ts, body), ":", 2)[1],
		"empty":            "",
	}
	for name, h := range bad {
		b := body
		if name == "tampered body" {
			b = append([]byte{}, body...)
			b[2] ^= 1
		}
		if err := v.Verify(h, b); err != ErrInvalidSignature {
			t.Errorf("%s: err = %v", name, err)
		}
	}

	// The handler passes verified deliveries on with the body intact, and answers 401.
	h := v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d", len(b))
	}))
	for header, want := range map[string]int{good: 200, "t=" + ts: 401} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/hooks", strings.NewReader(string(body)))
		req.Header.Set(SignatureHeader, header)
		h.ServeHTTP(rec, req)
		if rec.Code != want || (want == 200 && rec.Body.String() != strconv.Itoa(len(body))) {
			t.Errorf("handler: %d %q, want %d", rec.Code, rec.Body.String(), want)
		}
	}
}
