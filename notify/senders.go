package notify

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/wneessen/go-mail"
)

// LogSender writes messages to the log instead of sending them: what a
// local run without SMTP_URL or SMS_API_URL does.
type LogSender struct{ Log *slog.Logger }

// Send logs n.
func (s LogSender) Send(ctx context.Context, n Notification) error {
	s.Log.InfoContext(ctx, "notification (not sent: no provider configured)",
		"id", n.ID, "channel", n.Channel, "template", n.Template, "to", n.Recipient, "subject", n.Subject,
		"text", n.BodyText)
	return nil
}

// SMTPSender sends email through an SMTP server.
type SMTPSender struct {
	// A client per message: sends run concurrently on several job
	// workers, and a client holds one connection.
	host        string
	opts        []mail.Option
	implicitTLS bool // smtps://
	from        string
	domain      string // of the Message-IDs
}

// NewSMTPSender sends through smtpURL, smtp://user:pass@host:port (STARTTLS
// when the server offers it; port 587 by default) or smtps://... (TLS from
// the start; port 465), from the address from.
func NewSMTPSender(smtpURL, from string) (*SMTPSender, error) {
	u, err := url.Parse(smtpURL)
	if err != nil || u.Hostname() == "" {
		return nil, fmt.Errorf("SMTP_URL: want smtp://user:pass@host:port or smtps://..., got %q", redact(smtpURL))
	}
	opts := []mail.Option{mail.WithTimeout(sendTimeout)}
	port := 587
	switch u.Scheme {
	case "smtp":
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	case "smtps":
		port = 465
		opts = append(opts, mail.WithSSL())
	default:
		return nil, fmt.Errorf("SMTP_URL: scheme must be smtp or smtps, got %q", u.Scheme)
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("SMTP_URL: bad port %q", p)
		}
	}
	opts = append(opts, mail.WithPort(port))
	if u.User != nil && u.User.Username() != "" {
		pass, _ := u.User.Password()
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover),
			mail.WithUsername(u.User.Username()), mail.WithPassword(pass))
	}
	// Checked now, so a bad SMTP_URL stops the start, not every send.
	if _, err := mail.NewClient(u.Hostname(), opts...); err != nil {
		return nil, fmt.Errorf("smtp client: %w", err)
	}
	domain := "shopd.local"
	if at := strings.LastIndex(from, "@"); at >= 0 && at < len(from)-1 {
		domain = strings.Trim(from[at+1:], "> ")
	}
	return &SMTPSender{host: u.Hostname(), opts: opts, implicitTLS: u.Scheme == "smtps", from: from, domain: domain}, nil
}

// MessageID is the Message-ID of notification id (without angle
// brackets): derived from the id, so a resend after a crash carries the
// same one and the receiving side can drop the copy.
func (s *SMTPSender) MessageID(id string) string { return "notification-" + id + "@" + s.domain }

// Send sends n as a multipart/alternative message, text and HTML.
func (s *SMTPSender) Send(ctx context.Context, n Notification) error {
	m := mail.NewMsg()
	if err := m.From(s.from); err != nil {
		return fmt.Errorf("mail from %q: %w", s.from, err)
	}
	if err := m.To(n.Recipient); err != nil {
		return fmt.Errorf("mail to %q: %w", n.Recipient, err)
	}
	m.Subject(n.Subject)
	m.SetMessageIDWithValue(s.MessageID(n.ID))
	m.SetDate()
	m.SetBodyString(mail.TypeTextPlain, n.BodyText)
	if n.BodyHTML != "" {
		m.AddAlternativeString(mail.TypeTextHTML, n.BodyHTML)
	}
	opts := slices.Clip(s.opts)
	var stops []func() bool
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	if !s.implicitTLS {
		// go-mail watches ctx while it dials, not while it talks: a server
		// that stops answering would hold the job (and a shutdown) until the
		// connection's deadline. Closing the connection when ctx ends
		// unblocks it at once. (With smtps:// go-mail must dial itself to
		// know the connection is encrypted; there the deadline bounds it.)
		opts = append(opts, mail.WithDialContextFunc(func(dctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(dctx, network, addr)
			if err != nil {
				return nil, err
			}
			stops = append(stops, context.AfterFunc(ctx, func() { conn.Close() }))
			return conn, nil
		}))
	}
	c, err := mail.NewClient(s.host, opts...)
	if err != nil {
		return fmt.Errorf("smtp client: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	return nil
}

// SMSSender sends SMS through a Twilio-compatible HTTP API.
type SMSSender struct {
	// APIURL is the API's base (https://api.twilio.com).
	APIURL, AccountSID, AuthToken, From string
	HTTP                                *http.Client
}

// Send posts n's text body to {APIURL}/2010-04-01/Accounts/{SID}/Messages.json.
func (s *SMSSender) Send(ctx context.Context, n Notification) error {
	endpoint := strings.TrimRight(s.APIURL, "/") + "/2010-04-01/Accounts/" + url.PathEscape(s.AccountSID) + "/Messages.json"
	form := url.Values{"To": {n.Recipient}, "From": {s.From}, "Body": {strings.TrimSpace(n.BodyText)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("send sms: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(s.AccountSID, s.AuthToken)
	hc := s.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: sendTimeout}
	}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("send sms: %w", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("send sms: provider answered %s: %s", res.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// redact hides the password of a URL for error messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}
