package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// The login flood is not a throughput scenario: it fires -flood logins at
// the same moment and reports what the server's memory did meanwhile. A
// login is the most memory-hungry request the API has (argon2id takes 19
// MiB per hash), so a burst of them is what decides how much memory an
// instance needs. The server's login limits are off in the bench, so every
// attempt reaches the password check: the worst case.

// floodPassword is the flood accounts' password.
const floodPassword = "bench-flood-password"

// floodResult is what one login flood measured.
type floodResult struct {
	logins   int
	accounts int
	right    int // logins sent with the right password; the rest are wrong or for unknown emails
	elapsed  time.Duration
	p50, p99 time.Duration
	statuses map[string]int // "200 OK" -> count, "transport error" -> count
	errs     map[string]*errStats
	// beforeRSS is the server's RSS (KiB) just before the flood; peakRSS
	// its VmHWM after it (since the reset, unless peakReset failed).
	beforeRSS, peakRSS, afterRSS int64
	peakReset, rssErr            error
}

// floodAccounts registers n accounts for the flood, one at a time (each
// registration hashes a password) and returns their emails.
func floodAccounts(ctx context.Context, a api, n int) ([]string, error) {
	nonce := randomHex(4) // emails stay unique across runs against one database
	emails := make([]string, n)
	for i := range emails {
		emails[i] = fmt.Sprintf("bench-flood-%s-%03d@example.com", nonce, i+1)
		err := a.call(ctx, http.MethodPost, "/v1/auth/register", "", map[string]string{
			"email": emails[i], "password": floodPassword, "firstName": "Flood", "lastName": fmt.Sprintf("Account %d", i+1),
		}, nil, http.StatusCreated)
		if err != nil {
			return nil, fmt.Errorf("register flood account: %w", err)
		}
	}
	return emails, nil
}

// floodLogin is one login of the flood and the status it must get.
type floodLogin struct {
	body []byte
	want int
}

// floodLogins builds n logins over the accounts: a third with the right
// password, a third with a wrong one, a third for emails that do not exist.
// A bodySize larger than a login's JSON pads it with spaces (still valid
// JSON, and what the server must read) up to that many bytes.
func floodLogins(n int, emails []string, bodySize int) []floodLogin {
	out := make([]floodLogin, n)
	for i := range out {
		email, password, want := emails[i%len(emails)], floodPassword, http.StatusOK
		switch i % 3 {
		case 1:
			password, want = fmt.Sprintf("wrong-password-%d", i), http.StatusUnauthorized
		case 2:
			email, want = fmt.Sprintf("bench-nobody-%d@example.com", i), http.StatusUnauthorized
		}
		body := mustJSON(map[string]string{"email": email, "password": password})
		if pad := bodySize - len(body); pad > 0 {
			body = append(body[:len(body)-1:len(body)-1], append(bytes.Repeat([]byte(" "), pad), '}')...)
		}
		out[i] = floodLogin{body: body, want: want}
	}
	return out
}

// loginFlood sends every login at once, each on its own connection, and
// measures the server's resident memory around it.
func loginFlood(ctx context.Context, base string, pid int, logins []floodLogin, accounts int) floodResult {
	res := floodResult{logins: len(logins), accounts: accounts, statuses: map[string]int{}, errs: map[string]*errStats{}}
	for _, l := range logins {
		if l.want == http.StatusOK {
			res.right++
		}
	}
	client := &http.Client{
		// A login waits for a hashing slot: the last of the flood waits
		// for all the others.
		Timeout: 5 * time.Minute,
		Transport: &http.Transport{
			Proxy:               nil, // loopback only, whatever HTTP_PROXY says
			MaxIdleConnsPerHost: len(logins),
			DisableCompression:  true,
		},
	}
	defer client.CloseIdleConnections()

	_, res.beforeRSS, _ = memoryKiB(pid)
	res.peakReset = resetPeakRSS(pid)

	type outcome struct {
		status  string
		sample  string
		latency time.Duration
		ok      bool
	}
	outcomes := make([]outcome, len(logins))
	start := make(chan struct{})
	var ready, done sync.WaitGroup
	for i, l := range logins {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/auth/login", bytes.NewReader(l.body))
			if err != nil {
				ready.Done()
				outcomes[i] = outcome{status: "bad request", sample: err.Error()}
				return
			}
			req.Header.Set("Content-Type", "application/json")
			ready.Done()
			<-start
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				outcomes[i] = outcome{status: "transport error", sample: err.Error()}
				return
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			o := outcome{status: fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode)), latency: time.Since(t0)}
			o.ok = resp.StatusCode == l.want
			if !o.ok {
				o.sample = fmt.Sprintf("want %d: %s", l.want, body)
			}
			outcomes[i] = o
		}()
	}
	ready.Wait()
	began := time.Now()
	close(start)
	done.Wait()
	res.elapsed = time.Since(began)

	var lat []time.Duration
	for _, o := range outcomes {
		res.statuses[o.status]++
		if o.ok {
			lat = append(lat, o.latency)
			continue
		}
		e := res.errs[o.status]
		if e == nil {
			e = &errStats{sample: truncate(o.sample, 300)}
			res.errs[o.status] = e
		}
		e.n++
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		res.p50, res.p99 = percentile(lat, 0.50), percentile(lat, 0.99)
	}
	res.peakRSS, res.afterRSS, res.rssErr = memoryKiB(pid)
	return res
}

// failures counts the logins that did not get the status they should.
func (r floodResult) failures() int {
	n := 0
	for _, e := range r.errs {
		n += e.n
	}
	return n
}

// print writes the flood's section of the report.
func (r floodResult) print(out io.Writer) {
	fmt.Fprintf(out, "\nlogin flood: %d concurrent logins (%d with the right password, the rest wrong or for unknown emails; %d accounts)\n",
		r.logins, r.right, r.accounts)
	statuses := make([]string, 0, len(r.statuses))
	for s := range r.statuses {
		statuses = append(statuses, s)
	}
	sort.Strings(statuses)
	parts := make([]string, len(statuses))
	for i, s := range statuses {
		parts[i] = fmt.Sprintf("%d x %s", r.statuses[s], s)
	}
	fmt.Fprintf(out, "  answered in %v: %s; p50 %s, p99 %s (as expected: %d, not: %d)\n",
		r.elapsed.Round(10*time.Millisecond), strings.Join(parts, ", "), ms(r.p50), ms(r.p99), r.logins-r.failures(), r.failures())
	switch {
	case r.rssErr != nil:
		fmt.Fprintf(out, "  server peak RSS: unknown (%v)\n", r.rssErr)
	case r.peakReset != nil:
		fmt.Fprintf(out, "  server peak RSS (VmHWM): %.1f MiB, since start (could not reset the peak before the flood: %v)\n", mib(r.peakRSS), r.peakReset)
	default:
		fmt.Fprintf(out, "  server peak RSS (VmHWM) during the flood: %.1f MiB (RSS before %.1f MiB, after %.1f MiB)\n",
			mib(r.peakRSS), mib(r.beforeRSS), mib(r.afterRSS))
	}
}

// errorLines lists the unexpected answers, most frequent first.
func (r floodResult) errorLines() []string {
	return result{errs: r.errs}.errorLines()
}
