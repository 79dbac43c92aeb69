package notify

import (
	"context"
	"database/sql"
)

// EnqueueTemplate renders template name with data and writes it in tx as
// m (channel, recipient, dedupe key, links), with the job that sends it,
// for messages whose cause is not an order transition (stock, carts). As
// with Enqueue, a message whose dedupe key was written before is dropped:
// it reports "" and no error.
func (o *Outbox) EnqueueTemplate(ctx context.Context, tx *sql.Tx, name string, data any, m Message) (string, error) {
	r, err := o.render(name, data)
	if err != nil {
		return "", err
	}
	m.Template, m.Subject, m.BodyText, m.BodyHTML = r.Template, r.Subject, r.BodyText, r.BodyHTML
	return o.Enqueue(ctx, tx, m)
}

// StorefrontURL is the shop's web address that links in messages start
// with.
func (o *Outbox) StorefrontURL() string { return o.storefront }
