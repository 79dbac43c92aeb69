package notify

import "time"

// Backoff is the delay after failed attempt n, for the tests.
func (o *Outbox) Backoff(n int) time.Duration { return o.backoff(n) }
