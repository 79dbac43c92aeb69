package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters: the low-memory end of OWASP's recommendations (7
// MiB, 5 passes), which the cheat sheet rates as strong as 19 MiB with 2
// passes for about the same CPU: the memory is what a login flood costs a
// process, so the lower-memory setting lets an instance take a flood
// without its garbage collector running flat out.
const (
	argonMemoryKiB = 7 * 1024
	argonTime      = 5
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16
	// maxVerifyMemoryKiB is the most memory a stored hash may ask for:
	// hashes made before with OWASP's 19 MiB, 2 passes still verify.
	maxVerifyMemoryKiB = 19 * 1024
)

// MinPasswordLength is the password policy: at least this many characters.
const MinPasswordLength = 10

var b64 = base64.RawStdEncoding

// Hashing is gated. Each argon2id computation holds argonMemoryKiB (7
// MiB) and leaves it as garbage, and the garbage collector lets the heap
// grow to a multiple of what is live (GOGC; shopd runs at 400): the memory
// a flood of logins costs is about maxConcurrentHashes x 7 MiB x that
// multiple. So the number of hashes at once is fixed, not scaled with the
// machine's cores (with 19 MiB hashes, 4 cores made it 4 x 19 MiB x 5,
// over 400 MB), and login throughput grows with instances instead. The logins waiting for a slot
// hold little (their body, their goroutine): at most maxHashWaiters wait,
// and one whose client has gone stops waiting.
const (
	maxConcurrentHashes = 2
	maxHashWaiters      = 512
)

// ErrHashingBusy is returned instead of waiting when maxHashWaiters
// password checks are already waiting: the caller should ask the client to
// retry shortly.
var ErrHashingBusy = errors.New("too many password checks waiting")

// hashGate admits a fixed number of hashes at once and a bounded number of
// waiters.
type hashGate struct {
	slots      chan struct{}
	waiters    atomic.Int64
	maxWaiters int64
}

func newHashGate(concurrent, waiters int) *hashGate {
	return &hashGate{slots: make(chan struct{}, concurrent), maxWaiters: int64(waiters)}
}

// passwordGate is the process's one gate: the memory it bounds is the
// process's.
var passwordGate = newHashGate(maxConcurrentHashes, maxHashWaiters)

// enter waits for a slot; leave gives it back.
func (g *hashGate) enter(ctx context.Context) error {
	select {
	case g.slots <- struct{}{}:
		return nil
	default:
	}
	if g.waiters.Add(1) > g.maxWaiters {
		g.waiters.Add(-1)
		return ErrHashingBusy
	}
	defer g.waiters.Add(-1)
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait to hash a password: %w", ctx.Err())
	}
}

func (g *hashGate) leave() { <-g.slots }

func argonKey(ctx context.Context, password, salt []byte, iter, mem uint32, threads uint8, keyLen uint32) ([]byte, error) {
	if err := passwordGate.enter(ctx); err != nil {
		return nil, err
	}
	defer passwordGate.leave()
	return argon2.IDKey(password, salt, iter, mem, threads, keyLen), nil
}

// HashPassword returns an argon2id hash in the PHC string format, waiting
// for a hashing slot as long as it takes.
func HashPassword(password string) (string, error) {
	return HashPasswordContext(context.Background(), password)
}

// HashPasswordContext is HashPassword for a request: it stops waiting for a
// hashing slot when ctx ends, and returns ErrHashingBusy when too many
// others are waiting.
func HashPasswordContext(ctx context.Context, password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key, err := argonKey(ctx, []byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemoryKiB, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// dummyHash is verified against when the user does not exist, so an unknown
// email costs as much time as a wrong password. It is a fixed hash with
// this package's parameters (a 16-byte salt, a 32-byte key), not one
// computed at start-up: that cost every process start a hash (up to a
// few hundred ms on a busy machine) and its memory.
var dummyHash = fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonThreads,
	"c2hvcGQgZHVtbXkgc2FsdA", "c2hvcGQ6IHRoZSBrZXkgdGhhdCBtYXRjaGVzIG5vbmU")

// CheckPassword reports whether password matches the PHC-encoded hash. An
// empty hash is checked against a dummy so the time taken is the same. Like
// HashPasswordContext it stops waiting for a hashing slot when ctx ends and
// returns ErrHashingBusy when too many others are waiting.
func CheckPassword(ctx context.Context, hash, password string) (bool, error) {
	if hash == "" {
		hash = dummyHash
		password += "\x00never matches"
	}
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("check password: unknown hash format")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errors.New("check password: unknown argon2 version")
	}
	var mem, iter uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &iter, &threads); err != nil {
		return false, fmt.Errorf("check password: parameters: %w", err)
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, fmt.Errorf("check password: salt: %w", err)
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil {
		return false, fmt.Errorf("check password: key: %w", err)
	}
	if mem > maxVerifyMemoryKiB {
		// The gate's budget assumes our parameters; a hash asking for more
		// memory was not made here.
		return false, errors.New("check password: memory parameter above the service's")
	}
	got, err := argonKey(ctx, []byte(password), salt, iter, mem, threads, uint32(len(want)))
	if err != nil {
		return false, fmt.Errorf("check password: %w", err)
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
