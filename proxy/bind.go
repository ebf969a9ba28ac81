package proxy

import (
	"encoding/json"
	"errors"
	"io"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// bindJSON decodes the request body into v. It answers 413 past the body limit and 400
// invalid_request for anything that is not one JSON object. Unknown fields are ignored
// so that clients of a newer API keep working.
func bindJSON(c *gin.Context, v any) bool {
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		if isTooLarge(err) {
			fail(c, problem.ErrPayloadTooLarge)
		} else {
			fail(c, problem.ErrInvalidRequest.WithDetail("could not read the request body"))
		}
		return false
	}
	c.Set(ctxBody, body)
	if err := decodeStrictJSON(body, v); err != nil {
		fail(c, problem.ErrInvalidRequest.WithDetail(err.Error()))
		return false
	}
	return true
}

// maxJSONDepth bounds nesting so a small body cannot make the decoder work hard.
const maxJSONDepth = 32

func decodeStrictJSON(body []byte, v any) error {
	if len(body) == 0 {
		return errors.New("the request body must be a JSON object")
	}
	depth, inStr, esc := 0, false, false
	for _, b := range body {
		switch {
		case esc:
			esc = false
		case inStr && b == '\\':
			esc = true
		case b == '"':
			inStr = !inStr
		case !inStr && (b == '{' || b == '['):
			if depth++; depth > maxJSONDepth {
				return errors.New("the JSON body is nested too deeply")
			}
		case !inStr && (b == '}' || b == ']'):
			depth--
		}
	}
	var probe json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		return errors.New("the request body is not valid JSON")
	}
	if len(probe) == 0 || probe[0] != '{' {
		return errors.New("the request body must be a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return errors.New("field " + strconv.Quote(te.Field) + " has the wrong type")
		}
		return errors.New("the request body does not match the expected shape")
	}
	return nil
}
