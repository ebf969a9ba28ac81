package awskms

import (
	"time"

	"github.com/authpipe/authpipe-proxy/internal/jitter"
)

// fullJitter is "full jitter" exponential backoff: a delay drawn uniformly from
// [0, min(max, base·2^attempt)). The SDK's legacy backoff stops jittering once the cap is
// 1s or less (every retry then waits exactly the cap), which would make replicas that a
// KMS throttle hit at once retry at once.
type fullJitter struct{ base, max time.Duration }

func (j fullJitter) BackoffDelay(attempt int, _ error) (time.Duration, error) {
	ceiling := j.max
	if attempt >= 0 && attempt < 32 {
		if d := j.base << attempt; d > 0 && d < ceiling {
			ceiling = d
		}
	}
	if ceiling <= 0 {
		return 0, nil
	}
	return jitter.Duration(ceiling), nil
}
