package notify

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/store"
)

// The templates of order messages; the names are part of the API.
const (
	TemplateOrderConfirmation = "order-confirmation"
	TemplatePaymentFailed     = "payment-failed"
	TemplatePaymentTimeout    = "payment-timeout"
	TemplateOrderCancelled    = "order-cancelled"
	TemplateOrderRefunded     = "order-refunded"
	TemplateOrderShipped      = "order-shipped"
	TemplateOrderShippedSMS   = "order-shipped-sms"
	// The follow-ups, sent by delayed jobs (orders/workflows.go).
	TemplateFulfillmentReminder  = "fulfillment-reminder"
	TemplateReviewRequest        = "review-request"
	TemplateDeliveryConfirmation = "delivery-confirmation"
	// Not about one order: stock (package inventory) and carts (package
	// cartrecovery).
	TemplateLowStockAlert        = "low-stock-alert"
	TemplateDailyInventoryReport = "daily-inventory-report"
	TemplateAbandonedCart        = "abandoned-cart"
)

// Templates are every template name the outbox sends, the fixed label
// set of its metrics.
func Templates() []string {
	return []string{TemplateOrderConfirmation, TemplatePaymentFailed, TemplatePaymentTimeout,
		TemplateOrderCancelled, TemplateOrderRefunded, TemplateOrderShipped, TemplateOrderShippedSMS,
		TemplateFulfillmentReminder, TemplateReviewRequest, TemplateDeliveryConfirmation,
		TemplateLowStockAlert, TemplateDailyInventoryReport, TemplateAbandonedCart}
}

// Planned is a message an order transition causes: its template, channel
// and the key of its cause.
type Planned struct {
	Template  string
	Channel   string
	DedupeKey string
}

// ForOrderTransition is what an order transition tells its customer:
// events are the transition's recorded events in order, o the order after
// them, by who caused them. A payment confirmed for an order already
// cancelled sends nothing (its refund does); a cancellation says why (the
// payment failed, the payment window closed, or a person cancelled); each
// refund is keyed by the refunded total it brings, so every refund that
// succeeds is told once, however it is reported.
func ForOrderTransition(o store.Order, events []string, by store.Actor, hasPhone bool) []Planned {
	var out []Planned
	add := func(template, channel, cause string) {
		out = append(out, Planned{Template: template, Channel: channel, DedupeKey: template + ":" + cause})
	}
	for _, ev := range events {
		switch ev {
		case shopd.EventPaid:
			if o.Status != shopd.StatusCancelled {
				add(TemplateOrderConfirmation, ChannelEmail, o.ID)
			}
		case shopd.EventCancelled:
			switch {
			case slices.Contains(events, shopd.EventPaymentFailed):
				add(TemplatePaymentFailed, ChannelEmail, o.ID)
			case by.Kind == store.ActorSystem:
				add(TemplatePaymentTimeout, ChannelEmail, o.ID)
			default:
				add(TemplateOrderCancelled, ChannelEmail, o.ID)
			}
		case shopd.EventRefunded:
			add(TemplateOrderRefunded, ChannelEmail, o.ID+":"+strconv.FormatInt(o.RefundedCents, 10))
		case shopd.EventFulfilled:
			add(TemplateOrderShipped, ChannelEmail, o.ID)
			if hasPhone {
				add(TemplateOrderShippedSMS, ChannelSMS, o.ID)
			}
		}
	}
	return out
}

// recipientSQL reads what messages need of the customer: the name they
// are greeted by, the phone SMS go to, and whether they opted in to
// marketing (review requests).
const recipientSQL = `
SELECT first_name, phone, marketing_opt_in
FROM users
WHERE id = $1`

// OrderChanged writes, in tx, the messages the transition of order o
// (its recorded events, in order, caused by by) sends to its customer.
func (o *Outbox) OrderChanged(ctx context.Context, tx *store.Tx, ord store.Order, events []string, by store.Actor) error {
	var firstName string
	var phone sql.NullString
	var optIn bool
	err := tx.SQL().QueryRowContext(ctx, recipientSQL, ord.CustomerID).Scan(&firstName, &phone, &optIn)
	if err != nil && err != sql.ErrNoRows {
		return fmt.Errorf("read recipient of order %s: %w", ord.ID, err)
	}
	var ship struct {
		FirstName string  `json:"firstName"`
		Phone     *string `json:"phone"`
	}
	_ = json.Unmarshal(ord.ShippingAddress, &ship) // a bad address only loses the fallbacks
	if firstName == "" {
		firstName = ship.FirstName
	}
	to := phone.String
	if to == "" && ship.Phone != nil {
		to = *ship.Phone
	}
	for _, p := range ForOrderTransition(ord, events, by, to != "") {
		recipient := ord.Email
		if p.Channel == ChannelSMS {
			recipient = to
		}
		m, err := o.render(p.Template, orderData(o.storefront, ord, firstName))
		if err != nil {
			return err
		}
		m.Channel, m.Recipient, m.DedupeKey = p.Channel, recipient, p.DedupeKey
		m.OrderID, m.CustomerID = ord.ID, ord.CustomerID
		if _, err := o.Enqueue(ctx, tx.SQL(), m); err != nil {
			return err
		}
	}
	return nil
}

// ForFollowUp plans the message of an order's follow-up (its template
// name): to the warehouse for the fulfilment reminder, else to the
// customer; a review request only when the customer opted in to
// marketing. ok is false when nothing is sent. The key is the template
// and the order, so each follow-up is sent at most once per order.
func ForFollowUp(template, orderID string, optedIn bool) (p Planned, toWarehouse, ok bool) {
	switch template {
	case TemplateFulfillmentReminder:
		toWarehouse = true
	case TemplateReviewRequest:
		if !optedIn {
			return Planned{}, false, false
		}
	case TemplateDeliveryConfirmation:
	default:
		return Planned{}, false, false
	}
	return Planned{Template: template, Channel: ChannelEmail, DedupeKey: template + ":" + orderID}, toWarehouse, true
}

// OrderFollowUp writes, in tx, the message of the order's follow-up
// (template, one of the follow-up templates) if ForFollowUp plans one.
// Whether the follow-up still applies to the order is the caller's
// decision (orders.FollowUpApplies).
func (o *Outbox) OrderFollowUp(ctx context.Context, tx *store.Tx, ord store.Order, template string) error {
	var firstName string
	var phone sql.NullString
	var optIn bool
	err := tx.SQL().QueryRowContext(ctx, recipientSQL, ord.CustomerID).Scan(&firstName, &phone, &optIn)
	if err != nil && err != sql.ErrNoRows {
		return fmt.Errorf("read recipient of order %s: %w", ord.ID, err)
	}
	p, toWarehouse, ok := ForFollowUp(template, ord.ID, optIn)
	if !ok {
		return nil
	}
	recipient := ord.Email
	if toWarehouse {
		recipient = o.warehouse
	}
	m, err := o.render(p.Template, orderData(o.storefront, ord, firstName))
	if err != nil {
		return err
	}
	m.Channel, m.Recipient, m.DedupeKey = p.Channel, recipient, p.DedupeKey
	m.OrderID, m.CustomerID = ord.ID, ord.CustomerID
	if _, err := o.Enqueue(ctx, tx.SQL(), m); err != nil {
		return fmt.Errorf("enqueue %s of order %s: %w", template, ord.ID, err)
	}
	return nil
}
