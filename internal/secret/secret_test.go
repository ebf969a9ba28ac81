package secret_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/secret"
)

const sentinel = "gho_SENTINELsecretValue1234567890"

// requireRedacted fails if out shows the sentinel in any common encoding.
func requireRedacted(t *testing.T, out string) {
	t.Helper()
	lower := strings.ToLower(out)
	for name, form := range map[string]string{
		"plain":   sentinel,
		"part":    "SENTINEL",
		"hex":     hex.EncodeToString([]byte(sentinel))[:16],
		"base64":  base64.StdEncoding.EncodeToString([]byte(sentinel))[:16],
		"decimal": strings.Trim(fmt.Sprint([]byte(sentinel)[:4]), "[]"),
	} {
		require.NotContains(t, lower, strings.ToLower(form), "output shows the secret (%s): %s", name, out)
	}
}

type exported struct {
	Name  string
	Token secret.Secret
}

type unexported struct {
	name  string
	token secret.Secret
}

type pointers struct {
	Token *secret.Secret
	inner *secret.Secret
}

func TestSecretRedactsEverywhere(t *testing.T) {
	s := secret.New(sentinel)
	ex := exported{Name: "conn_1", Token: s}
	un := unexported{name: "conn_1", token: s}
	ptr := pointers{Token: &s, inner: &s}
	m := map[string]secret.Secret{"access_token": s}
	sl := []secret.Secret{s, s}

	cases := map[string]func() string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s", "%T%v"} {
		for name, v := range map[string]any{
			"value": s, "pointer": &s, "exported-field": ex, "unexported-field": un,
			"pointer-fields": ptr, "map": m, "slice": sl, "nested-pointer": &un,
		} {
			cases["fmt "+verb+" "+name] = func() string { return fmt.Sprintf(verb, v) }
		}
	}
	cases["Sprint"] = func() string { return fmt.Sprint(s, ex, un, m, sl) }
	cases["Sprintln"] = func() string { return fmt.Sprintln(s, &s) }
	cases["String"] = func() string { return s.String() }
	cases["GoString"] = func() string { return s.GoString() }
	cases["Errorf %v"] = func() string { return fmt.Errorf("refresh failed for %v", s).Error() }
	cases["Errorf wrapping struct"] = func() string {
		return fmt.Errorf("ctx %+v: %w", un, errors.New("boom")).Error()
	}
	jsonOf := func(v any) func() string {
		return func() string {
			b, err := json.Marshal(v)
			require.NoError(t, err)
			return string(b)
		}
	}
	cases["json value"] = jsonOf(s)
	cases["json struct"] = jsonOf(ex)
	cases["json pointer struct"] = jsonOf(ptr)
	cases["json map"] = jsonOf(m)
	cases["json slice"] = jsonOf(sl)
	cases["json map key"] = jsonOf(map[secret.Secret]int{s: 1})
	cases["MarshalText"] = func() string {
		b, err := s.MarshalText()
		require.NoError(t, err)
		return string(b)
	}
	for _, h := range []struct {
		name string
		new  func(*bytes.Buffer) slog.Handler
	}{
		{"text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
		{"json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
	} {
		cases["slog "+h.name] = func() string {
			var buf bytes.Buffer
			l := slog.New(h.new(&buf))
			l.Info("token", "secret", s, slog.Any("any", s), slog.Any("struct", ex), slog.Any("unexported", un),
				slog.Any("map", m), slog.Any("slice", sl), slog.Group("g", "p", &s))
			return buf.String()
		}
	}
	cases["gin c.JSON"] = func() string {
		gin.SetMode(gin.TestMode)
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		c.JSON(http.StatusOK, gin.H{"secret": s, "struct": ex, "map": m})
		return w.Body.String()
	}

	for name, out := range cases {
		t.Run(name, func(t *testing.T) {
			got := out()
			requireRedacted(t, got)
			if !strings.HasPrefix(name, "fmt %T") && !strings.Contains(name, "unexported") &&
				!strings.Contains(name, "pointer-fields") && !strings.Contains(name, "nested-pointer") &&
				!strings.Contains(name, "pointer struct") && !strings.Contains(name, "Errorf wrapping") {
				require.Contains(t, got, secret.Redacted)
			}
		})
	}
}

func TestSecretDecodesRequestBodies(t *testing.T) {
	var body struct {
		APIKey secret.Secret `json:"api_key"`
		Opt    secret.Secret `json:"opt"`
	}
	require.NoError(t, json.Unmarshal([]byte(`{"api_key":"sk_live_\u00e9abc","opt":null}`), &body))
	require.Equal(t, "sk_live_éabc", body.APIKey.Reveal())
	require.True(t, body.Opt.IsZero())

	var bad struct{ S secret.Secret }
	err := json.Unmarshal([]byte(`{"S":{"x":"`+sentinel+`"}}`), &bad)
	require.Error(t, err)
	requireRedacted(t, err.Error())

	// gin binding decodes into a Secret too.
	gin.SetMode(gin.TestMode)
	w := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(w)
	c.Request = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"api_key":"`+sentinel+`"}`))
	c.Request.Header.Set("Content-Type", "application/json")
	var in struct {
		APIKey secret.Secret `json:"api_key" binding:"required"`
	}
	require.NoError(t, c.ShouldBindJSON(&in))
	require.Equal(t, sentinel, in.APIKey.Reveal())

	var txt secret.Secret
	src := []byte("text-secret")
	require.NoError(t, txt.UnmarshalText(src))
	src[0] = 'X'
	require.Equal(t, "text-secret", txt.Reveal(), "UnmarshalText copies its input")
}

func TestSecretAccessors(t *testing.T) {
	var zero secret.Secret
	require.True(t, zero.IsZero())
	require.Equal(t, 0, zero.Len())
	require.Equal(t, "", zero.Reveal())
	require.Equal(t, "", zero.Prefix(4))
	require.True(t, zero.Equal(secret.Secret{}))
	zero.Wipe() // no panic on the zero value

	s := secret.New("gho_AbCdEfGh")
	require.Equal(t, 12, s.Len())
	require.Equal(t, []byte("gho_AbCdEfGh"), s.Bytes())
	require.True(t, s.Equal(secret.New("gho_AbCdEfGh")))
	require.False(t, s.Equal(secret.New("gho_AbCdEfGx")))
	require.False(t, s.Equal(secret.New("gho_AbCdEfG")))

	for _, tc := range []struct {
		secret string
		n      int
		want   string
	}{
		{"gho_AbCdEfGh", 4, "gho_"},
		{"gho_AbCdEfGh", 6, "gho_Ab"},
		{"gho_AbCdEfGh", 7, ""}, // 12 < 14: too short to show 7
		{"s3cretvalue", 4, "s3cr"},
		{"short", 4, ""},
		{"abcdefgh", 4, "abcd"},
		{"abcdefg", 4, ""},
		{"abcdefgh", 0, ""},
		{"abcdefgh", -1, ""},
	} {
		t.Run(fmt.Sprintf("Prefix(%q,%d)", tc.secret, tc.n), func(t *testing.T) {
			require.Equal(t, tc.want, secret.New(tc.secret).Prefix(tc.n))
		})
	}
}

func TestSecretWipe(t *testing.T) {
	raw := []byte(sentinel)
	s := secret.FromBytes(raw)
	cp := s
	s.Wipe()
	require.Equal(t, make([]byte, len(sentinel)), raw, "the backing bytes are zeroed")
	require.True(t, s.IsZero())
	require.Equal(t, make([]byte, len(sentinel)), cp.Bytes(), "a copy shares the zeroed bytes")
}
