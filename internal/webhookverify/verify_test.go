package webhookverify_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/webhookverify"
	"github.com/authpipe/authpipe-proxy/oauthflow"
)

func catalogScheme(t testing.TB, name string) webhookverify.Scheme {
	t.Helper()
	cat, err := oauthflow.LoadCatalog()
	require.NoError(t, err)
	p, ok := cat.Get(name)
	require.True(t, ok, name)
	require.NotNil(t, p.Webhook, name)
	return *p.Webhook
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// The providers' own published examples, verified by the catalog's schemes exactly as
// documented (docs/providers.md cites each page).
func TestPublishedVectors(t *testing.T) {
	slackBody := "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	for name, tc := range map[string]struct {
		provider, secret string
		req              webhookverify.Request
		now              time.Time
	}{
		// docs.github.com "Validating webhook deliveries": secret "It's a Secret to Everybody", payload "Hello, World!".
		"github": {"github", "It's a Secret to Everybody", webhookverify.Request{Body: []byte("Hello, World!"),
			Header: hdr("X-Hub-Signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")}, time.Now()},
		// api.slack.com "Verifying requests from Slack" walk-through.
		"slack": {"slack", "8f742231b10e8888abcd99yyyzzz85a5", webhookverify.Request{Body: []byte(slackBody),
			Header: hdr("X-Slack-Signature", "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
				"X-Slack-Request-Timestamp", "1531420618")}, time.Unix(1531420618+30, 0)},
		// twilio.com "Webhooks security" example: auth token 12345, the URL with its query, five parameters.
		"twilio": {"twilio", "12345", webhookverify.Request{URL: "https://mycompany.com/myapp.php?foo=1&bar=2",
			Body:   []byte("CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To=%2B18005551212"),
			Header: hdr("X-Twilio-Signature", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")}, time.Now()},
	} {
		t.Run(name, func(t *testing.T) {
			s := catalogScheme(t, tc.provider)
			res, err := s.Verify([][]byte{[]byte(tc.secret)}, tc.req, tc.now)
			require.NoError(t, err)
			require.NotZero(t, res.Digest)
			_, err = s.Verify([][]byte{[]byte("wrong secret")}, tc.req, tc.now)
			require.Equal(t, webhookverify.ReasonMismatch, webhookverify.Reason(err))
		})
	}
}

// deliveries builds, per catalog scheme, a delivery signed as its provider documents it
// (the signed content written out here by hand, independently of the scheme's template).
func deliveries(now time.Time, secret string) map[string]webhookverify.Request {
	mac := func(h string, content string) []byte {
		m := hmac.New(sha256.New, []byte(secret))
		if h == "sha1" {
			m = hmacSHA1(secret)
		}
		m.Write([]byte(content))
		return m.Sum(nil)
	}
	url := "https://proxy.example.com/v1/inbound/x/conn_1"
	body := `{"id":"evt_123","event_id":"ev_9","webhookTimestamp":` + strconv.FormatInt(now.UnixMilli(), 10) + `}`
	ts := strconv.FormatInt(now.Unix(), 10)
	ms := strconv.FormatInt(now.UnixMilli(), 10)
	rfc := now.UTC().Format(time.RFC3339)
	form := "To=%2B1555&Body=hi&From=%2B1444"
	return map[string]webhookverify.Request{
		"stripe": {URL: url, Body: []byte(body), Header: hdr("Stripe-Signature",
			"t="+ts+",v1="+hex.EncodeToString(mac("", ts+"."+body))+",v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39")},
		"github": {URL: url, Body: []byte(body), Header: hdr("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac("", body)),
			"X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")},
		"slack": {URL: url, Body: []byte(body), Header: hdr("X-Slack-Signature", "v0="+hex.EncodeToString(mac("", "v0:"+ts+":"+body)),
			"X-Slack-Request-Timestamp", ts)},
		"shopify": {URL: url, Body: []byte(body), Header: hdr("X-Shopify-Hmac-Sha256", b64(mac("", body)), "X-Shopify-Webhook-Id", "b54557e4")},
		"twilio":  {URL: url, Body: []byte(form), Header: hdr("X-Twilio-Signature", b64(mac("sha1", url+"Bodyhi"+"From+1444"+"To+1555")))},
		"zendesk": {URL: url, Body: []byte(body), Header: hdr("X-Zendesk-Webhook-Signature", b64(mac("", rfc+body)),
			"X-Zendesk-Webhook-Signature-Timestamp", rfc)},
		"hubspot": {Method: "POST", URL: url, Body: []byte(body), Header: hdr("X-HubSpot-Signature-v3", b64(mac("", "POST"+url+body+ms)),
			"X-HubSpot-Request-Timestamp", ms)},
		"intercom": {URL: url, Body: []byte(body), Header: hdr("X-Hub-Signature", "sha1="+hex.EncodeToString(mac("sha1", body)))},
		"linear":   {URL: url, Body: []byte(body), Header: hdr("Linear-Signature", hex.EncodeToString(mac("", body)), "Linear-Delivery", "d-1")},
		"square":   {URL: url, Body: []byte(body), Header: hdr("X-Square-Hmacsha256-Signature", b64(mac("", url+body)))},
	}
}

// Every declared scheme: a delivery signed as documented passes (with its event id where
// the scheme locates one), and is refused tampered, with the wrong secret, stale, with
// a second signature header, or without its signature.
func TestSchemes(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	secret := "whsec_test-secret-0123456789"
	wantID := map[string]string{"stripe": "evt_123", "github": "72d3162e-cc78-11e3-81ab-4c9367dc0958", "slack": "ev_9",
		"shopify": "b54557e4", "intercom": "evt_123", "linear": "d-1", "square": "ev_9"}
	ds := deliveries(now, secret)
	require.Len(t, ds, 10)
	for name, req := range ds {
		t.Run(name, func(t *testing.T) {
			s := catalogScheme(t, name)
			require.NoError(t, s.Validate())
			res, err := s.Verify([][]byte{[]byte("an old secret"), []byte(secret)}, req, now)
			require.NoError(t, err, "signed as documented, accepted with either secret of a rotation")
			require.Equal(t, wantID[name], res.EventID)
			again, err := s.Verify([][]byte{[]byte(secret)}, req, now)
			require.NoError(t, err)
			require.Equal(t, res.Digest, again.Digest, "a replay has the same digest")

			tampered := req
			tampered.Body = append([]byte(nil), req.Body...)
			tampered.Body[len(tampered.Body)-2] ^= 1
			_, err = s.Verify([][]byte{[]byte(secret)}, tampered, now)
			require.Error(t, err)

			_, err = s.Verify([][]byte{[]byte("whsec_wrong")}, req, now)
			require.Equal(t, webhookverify.ReasonMismatch, webhookverify.Reason(err))

			if s.Timestamp != "" {
				_, err = s.Verify([][]byte{[]byte(secret)}, req, now.Add(s.RememberFor()))
				require.Equal(t, webhookverify.ReasonStale, webhookverify.Reason(err))
			} else {
				require.Equal(t, webhookverify.DefaultReplayWindow, s.RememberFor())
			}

			twice := req
			twice.Header = req.Header.Clone()
			twice.Header.Add(s.SignatureHeader, req.Header.Get(s.SignatureHeader))
			_, err = s.Verify([][]byte{[]byte(secret)}, twice, now)
			require.Equal(t, webhookverify.ReasonMalformed, webhookverify.Reason(err))

			none := req
			none.Header = req.Header.Clone()
			none.Header.Del(s.SignatureHeader)
			_, err = s.Verify([][]byte{[]byte(secret)}, none, now)
			require.Equal(t, webhookverify.ReasonMissing, webhookverify.Reason(err))

			big := req
			big.Body = make([]byte, webhookverify.MaxBody+1)
			_, err = s.Verify([][]byte{[]byte(secret)}, big, now)
			require.Equal(t, webhookverify.ReasonTooLarge, webhookverify.Reason(err))
		})
	}
}

// A body of exactly the limit is verified (and the sign helper agrees with the verifier).
func TestBodyAtTheLimit(t *testing.T) {
	s := catalogScheme(t, "github")
	body := []byte(strings.Repeat("a", webhookverify.MaxBody))
	sig, err := s.Sign([]byte("k"), webhookverify.Request{Body: body}, "")
	require.NoError(t, err)
	_, err = s.Verify([][]byte{[]byte("k")}, webhookverify.Request{Body: body, Header: hdr(s.SignatureHeader, sig)}, time.Now())
	require.NoError(t, err)
}

func TestValidateRefusesBadSchemes(t *testing.T) {
	good := catalogScheme(t, "stripe")
	for name, mut := range map[string]func(*webhookverify.Scheme){
		"algorithm":       func(s *webhookverify.Scheme) { s.Algorithm = "md5" },
		"encoding":        func(s *webhookverify.Scheme) { s.Encoding = "base32" },
		"placeholder":     func(s *webhookverify.Scheme) { s.Signed = "{timestamp}.{bodyx}" },
		"no body":         func(s *webhookverify.Scheme) { s.Signed = "{timestamp}" },
		"no tolerance":    func(s *webhookverify.Scheme) { s.Tolerance = "" },
		"huge tolerance":  func(s *webhookverify.Scheme) { s.Tolerance = "24h" },
		"ts not signed":   func(s *webhookverify.Scheme) { s.Signed = "{body}" },
		"kv without key":  func(s *webhookverify.Scheme) { s.SignatureKey = "" },
		"event location":  func(s *webhookverify.Scheme) { s.EventID = "query:id" },
		"replay with ts":  func(s *webhookverify.Scheme) { s.ReplayWindow = "1h" },
		"no header":       func(s *webhookverify.Scheme) { s.SignatureHeader = "" },
		"unknown ts form": func(s *webhookverify.Scheme) { s.TimestampFormat = "iso" },
	} {
		s := good
		mut(&s)
		require.ErrorIs(t, s.Validate(), webhookverify.ErrInvalidScheme, name)
	}
}

// Stripe: "t=1,t=2" is ambiguous and refused; a v1 of the wrong length is skipped.
func TestKVHeaderParsing(t *testing.T) {
	s := catalogScheme(t, "stripe")
	_, _, err := s.ParseHeader("t=1,t=2,v1=" + strings.Repeat("00", 32))
	require.Equal(t, webhookverify.ReasonMalformed, webhookverify.Reason(err))
	sigs, pairs, err := s.ParseHeader("t=1, v1=abcd, v1=" + strings.Repeat("00", 32))
	require.NoError(t, err)
	require.Len(t, sigs, 1)
	require.Equal(t, "1", pairs["t"])
}

// The signature-header parsers never panic and never yield a signature of the wrong size.
func FuzzParseHeader(f *testing.F) {
	f.Add("t=1492774577,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd,v0=6ffbb59b")
	f.Add("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
	f.Add("0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
	f.Add("v0=,=,,t=")
	cat, err := oauthflow.LoadCatalog()
	if err != nil {
		f.Fatal(err)
	}
	var schemes []webhookverify.Scheme
	for _, p := range cat.All() {
		if p.Webhook != nil {
			schemes = append(schemes, *p.Webhook)
		}
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, s := range schemes {
			sigs, _, err := s.ParseHeader(v)
			if err == nil && len(sigs) == 0 {
				t.Fatalf("%s: no error and no signature", s.SignatureHeader)
			}
			for _, sig := range sigs {
				if len(sig) != 20 && len(sig) != 32 {
					t.Fatalf("%s: signature of %d bytes", s.SignatureHeader, len(sig))
				}
			}
			_, _ = s.Verify([][]byte{[]byte("k")}, webhookverify.Request{Header: hdr(s.SignatureHeader, v), Body: []byte(v)}, time.Now())
		}
	})
}
