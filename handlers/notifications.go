package handlers

import (
	"context"

	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/notify"
)

// Notifications is what the admin endpoints need of the outbox.
type Notifications interface {
	List(ctx context.Context, f notify.Filter) ([]notify.Notification, string, error)
	Retry(ctx context.Context, id string) (notify.Notification, error)
}

// ListNotifications is the admins' view of the outbox, newest first.
func (s *Server) ListNotifications(ctx context.Context, req gen.ListNotificationsRequestObject) (gen.ListNotificationsResponseObject, error) {
	p := req.Params
	f := notify.Filter{Template: deref(p.Template), OrderID: deref(p.OrderId), CustomerID: deref(p.CustomerId)}
	if p.Status != nil {
		f.Status = string(*p.Status)
	}
	pg := page(p.Limit, p.Cursor)
	f.Limit, f.Cursor = pg.Limit, pg.Cursor
	items, next, err := s.notifications.List(ctx, f)
	if err != nil {
		return nil, err
	}
	out := gen.ListNotifications200JSONResponse{Items: make([]gen.Notification, len(items)), NextCursor: nextCursor(next)}
	for i, n := range items {
		out.Items[i] = toAPINotification(n)
	}
	return out, nil
}

// RetryNotification queues a failed notification again: 404 for an
// unknown one, 409 unless it failed.
func (s *Server) RetryNotification(ctx context.Context, req gen.RetryNotificationRequestObject) (gen.RetryNotificationResponseObject, error) {
	n, err := s.notifications.Retry(ctx, req.NotificationId)
	if err != nil {
		return nil, err
	}
	return gen.RetryNotification200JSONResponse(toAPINotification(n)), nil
}

func toAPINotification(n notify.Notification) gen.Notification {
	return gen.Notification{
		Id:         n.ID,
		Channel:    gen.NotificationChannel(n.Channel),
		Template:   n.Template,
		Recipient:  n.Recipient,
		Subject:    n.Subject,
		Status:     gen.NotificationStatus(n.Status),
		Attempts:   int32(n.Attempts),
		LastError:  nullableOf(n.LastError),
		OrderId:    nullableOf(n.OrderID),
		CustomerId: nullableOf(n.CustomerID),
		CreatedAt:  n.CreatedAt,
		SentAt:     nullableOf(n.SentAt),
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
