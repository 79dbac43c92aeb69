package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/oapi-codegen/nullable"
	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/orders"
	"github.com/shopd/shopd/payments"
	"github.com/shopd/shopd/store"
)

// Checkout places the cart as an order, once per Idempotency-Key.
func (s *Server) Checkout(ctx context.Context, req gen.CheckoutRequestObject) (gen.CheckoutResponseObject, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, err
	}
	body := *req.Body
	if body.BillingAddress == nil {
		body.BillingAddress = &body.ShippingAddress
	}
	// The hash is over the decoded request, so formatting does not matter.
	canonical, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(canonical)
	shipping, _ := json.Marshal(body.ShippingAddress)
	billing, _ := json.Marshal(body.BillingAddress)
	placed, err := s.orders.Checkout(ctx, orders.CheckoutRequest{
		UserID: c.UserID, Key: req.Params.IdempotencyKey, RequestHash: hex.EncodeToString(sum[:]),
		ShippingAddress: shipping, BillingAddress: billing,
	})
	if err != nil {
		return nil, err
	}
	// Replays render the same frozen order, so their bodies are the first
	// answer's, byte for byte.
	out, err := toAPICheckout(placed.Order)
	if err != nil {
		return nil, err
	}
	if placed.Replay {
		return gen.Checkout200JSONResponse(out), nil
	}
	return gen.Checkout201JSONResponse(out), nil
}

// toAPICheckout is the checkout answer for the order as it was placed.
func toAPICheckout(o store.Order) (gen.CheckoutResult, error) {
	order, err := toAPIOrder(o)
	if err != nil {
		return gen.CheckoutResult{}, err
	}
	r := gen.CheckoutResult{Order: order, Payment: gen.Payment{Provider: gen.PaymentProviderStripe}}
	if o.PaymentIntentID != nil {
		r.Payment.PaymentIntentId = *o.PaymentIntentID
	}
	if o.ClientSecret != nil {
		r.Payment.ClientSecret = *o.ClientSecret
	}
	return r, nil
}

// ownOrder returns the order if the caller may see it: its owner or an
// admin. Anyone else gets ENotFound, exactly as for an unknown id.
func (s *Server) ownOrder(ctx context.Context, orderID string) (store.Order, store.Actor, error) {
	c, err := claims(ctx)
	if err != nil {
		return store.Order{}, store.Actor{}, err
	}
	o, err := s.store.Order(ctx, orderID)
	if err != nil {
		return store.Order{}, store.Actor{}, err
	}
	if !c.IsAdmin() && o.CustomerID != c.UserID {
		return store.Order{}, store.Actor{}, shopd.Errorf(shopd.ENotFound, "Order %s not found.", orderID)
	}
	return o, store.Actor{Kind: c.Role, ID: c.UserID}, nil
}

// ListOrders lists the caller's orders; admins see all and may filter and
// search. A customer sending q gets EForbidden.
func (s *Server) ListOrders(ctx context.Context, req gen.ListOrdersRequestObject) (gen.ListOrdersResponseObject, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, err
	}
	f := store.OrderFilter{CustomerID: c.UserID}
	if c.IsAdmin() {
		f.CustomerID = ""
		if req.Params.CustomerId != nil {
			f.CustomerID = *req.Params.CustomerId
		}
		if req.Params.Q != nil {
			f.Search = *req.Params.Q
		}
	} else if req.Params.Q != nil {
		// Refused rather than ignored, as `status` on products: a customer
		// searching by email would otherwise silently get their own orders
		// and believe the search ran.
		return nil, shopd.Errorf(shopd.EForbidden, "Only admins may search orders.")
	}
	if req.Params.Status != nil {
		f.Status = string(*req.Params.Status)
	}
	items, next, err := s.store.ListOrders(ctx, f, page(req.Params.Limit, req.Params.Cursor))
	if err != nil {
		return nil, err
	}
	out := gen.ListOrders200JSONResponse{Items: make([]gen.Order, len(items)), NextCursor: nextCursor(next)}
	for i, o := range items {
		if out.Items[i], err = toAPIOrder(o); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// GetOrder returns one order to its owner or an admin.
func (s *Server) GetOrder(ctx context.Context, req gen.GetOrderRequestObject) (gen.GetOrderResponseObject, error) {
	o, _, err := s.ownOrder(ctx, req.OrderId)
	if err != nil {
		return nil, err
	}
	out, err := toAPIOrder(o)
	return gen.GetOrder200JSONResponse(out), err
}

// ListOrderEvents returns an order's history, oldest first.
func (s *Server) ListOrderEvents(ctx context.Context, req gen.ListOrderEventsRequestObject) (gen.ListOrderEventsResponseObject, error) {
	if _, _, err := s.ownOrder(ctx, req.OrderId); err != nil {
		return nil, err
	}
	items, next, err := s.store.OrderEvents(ctx, req.OrderId, page(req.Params.Limit, req.Params.Cursor))
	if err != nil {
		return nil, err
	}
	out := gen.ListOrderEvents200JSONResponse{Items: make([]gen.OrderEvent, len(items)), NextCursor: nextCursor(next)}
	for i, e := range items {
		out.Items[i] = toAPIOrderEvent(e)
	}
	return out, nil
}

// CancelOrder cancels: the owner while payment is pending, an admin while
// unfulfilled. Stock is released and a paid order refunded.
func (s *Server) CancelOrder(ctx context.Context, req gen.CancelOrderRequestObject) (gen.CancelOrderResponseObject, error) {
	o, by, err := s.ownOrder(ctx, req.OrderId)
	if err != nil {
		return nil, err
	}
	reason := ""
	if req.Body != nil && req.Body.Reason != nil {
		reason = *req.Body.Reason
	}
	if o, err = s.orders.Cancel(ctx, o.ID, by, reason); err != nil {
		return nil, err
	}
	out, err := toAPIOrder(o)
	return gen.CancelOrder200JSONResponse(out), err
}

// adminActor is the caller of an admin-only operation (the validator has
// already checked the role).
func adminActor(ctx context.Context) (store.Actor, error) {
	c, err := claims(ctx)
	return store.Actor{Kind: c.Role, ID: c.UserID}, err
}

// FulfillOrder ships a paid order.
func (s *Server) FulfillOrder(ctx context.Context, req gen.FulfillOrderRequestObject) (gen.FulfillOrderResponseObject, error) {
	by, err := adminActor(ctx)
	if err != nil {
		return nil, err
	}
	o, err := s.orders.Fulfill(ctx, req.OrderId, req.Body.TrackingNumber, by)
	if err != nil {
		return nil, err
	}
	out, err := toAPIOrder(o)
	return gen.FulfillOrder200JSONResponse(out), err
}

// DeliverOrder records that a shipped order reached its customer.
func (s *Server) DeliverOrder(ctx context.Context, req gen.DeliverOrderRequestObject) (gen.DeliverOrderResponseObject, error) {
	by, err := adminActor(ctx)
	if err != nil {
		return nil, err
	}
	o, err := s.orders.Deliver(ctx, req.OrderId, by)
	if err != nil {
		return nil, err
	}
	out, err := toAPIOrder(o)
	return gen.DeliverOrder200JSONResponse(out), err
}

// RefundOrder refunds part or all of what was paid.
func (s *Server) RefundOrder(ctx context.Context, req gen.RefundOrderRequestObject) (gen.RefundOrderResponseObject, error) {
	by, err := adminActor(ctx)
	if err != nil {
		return nil, err
	}
	var amount int64
	reason := ""
	if req.Body != nil {
		if req.Body.AmountCents != nil {
			amount = *req.Body.AmountCents
		}
		if req.Body.Reason != nil {
			reason = string(*req.Body.Reason)
		}
	}
	o, err := s.orders.Refund(ctx, req.OrderId, amount, reason, by)
	if err != nil {
		return nil, err
	}
	out, err := toAPIOrder(o)
	return gen.RefundOrder200JSONResponse(out), err
}

// maxWebhookBytes caps a Stripe event body; real ones are a few KiB.
const maxWebhookBytes = 64 << 10

// stripeWebhook verifies the signature over the raw body and applies the
// event. It is a plain Echo route: the generated server would decode the
// body before the signature could be checked.
func (s *Server) stripeWebhook(c echo.Context) error {
	payload, err := io.ReadAll(io.LimitReader(c.Request().Body, maxWebhookBytes+1))
	if err != nil {
		return shopd.Errorf(shopd.EInvalid, "Could not read the body.")
	}
	if len(payload) > maxWebhookBytes {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge)
	}
	if s.webhookSecret == "" {
		return shopd.Errorf(shopd.EInvalid, "Webhooks are not configured (no signing secret).")
	}
	ev, err := payments.ParseWebhook(payload, c.Request().Header.Get("Stripe-Signature"), s.webhookSecret)
	if err != nil {
		s.log.WarnContext(c.Request().Context(), "rejected webhook", "err", err)
		if shopd.ErrorCode(err) == shopd.EInvalid {
			return err // verified, but a field is unacceptable: it says which
		}
		return shopd.Errorf(shopd.EInvalid, "The Stripe-Signature does not verify.")
	}
	c.Set(webhookVerifiedKey, true)
	if err := s.orders.HandleEvent(c.Request().Context(), ev); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]bool{"received": true})
}

func toAPIOrder(o store.Order) (gen.Order, error) {
	out := gen.Order{
		Id:                o.ID,
		OrderNumber:       o.Number(),
		CustomerId:        o.CustomerID,
		Email:             openapi_types.Email(o.Email),
		Status:            gen.OrderStatus(o.Status),
		PaymentStatus:     gen.PaymentStatus(o.PaymentStatus),
		FulfillmentStatus: gen.FulfillmentStatus(o.FulfillmentStatus),
		Items:             make([]gen.OrderItem, len(o.Items)),
		SubtotalCents:     o.SubtotalCents,
		TaxCents:          o.TaxCents,
		ShippingCents:     o.ShippingCents,
		DiscountCents:     o.DiscountCents,
		TotalCents:        o.TotalCents,
		RefundedCents:     o.RefundedCents,
		Currency:          o.Currency,
		PaymentIntentId:   nullableOf(o.PaymentIntentID),
		TrackingNumber:    nullableOf(o.TrackingNumber),
		ShippedAt:         nullableTime(o.ShippedAt),
		DeliveredAt:       nullableTime(o.DeliveredAt),
		CreatedAt:         o.CreatedAt.UTC(),
		UpdatedAt:         o.UpdatedAt.UTC(),
	}
	for i, it := range o.Items {
		out.Items[i] = gen.OrderItem{ProductId: it.ProductID, Sku: it.SKU, Name: it.Name,
			UnitPriceCents: it.UnitPriceCents, Quantity: int32(it.Quantity), LineTotalCents: it.LineTotalCents}
	}
	if err := json.Unmarshal(o.ShippingAddress, &out.ShippingAddress); err != nil {
		return gen.Order{}, fmt.Errorf("order %s shipping address: %w", o.ID, err)
	}
	if err := json.Unmarshal(o.BillingAddress, &out.BillingAddress); err != nil {
		return gen.Order{}, fmt.Errorf("order %s billing address: %w", o.ID, err)
	}
	return out, nil
}

func nullableTime(t *time.Time) nullable.Nullable[time.Time] {
	if t == nil {
		return nullable.NewNullNullable[time.Time]()
	}
	return nullable.NewNullableWithValue(t.UTC())
}

func toAPIOrderEvent(e store.OrderEvent) gen.OrderEvent {
	return gen.OrderEvent{
		Id:                strconv.FormatInt(e.ID, 10),
		OrderId:           e.OrderID,
		Type:              gen.OrderEventType(e.Type),
		Status:            gen.OrderStatus(e.Status),
		PaymentStatus:     gen.PaymentStatus(e.PaymentStatus),
		FulfillmentStatus: gen.FulfillmentStatus(e.FulfillmentStatus),
		Actor:             gen.OrderEventActor(e.Actor),
		AmountCents:       nullableOf(e.AmountCents),
		Note:              nullableOf(e.Note),
		CreatedAt:         e.CreatedAt.UTC(),
	}
}
