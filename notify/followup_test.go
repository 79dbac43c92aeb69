package notify_test

import (
	"testing"

	"github.com/shopd/shopd/notify"
)

// TestForFollowUp: who each follow-up goes to, that a review request
// needs the customer's opt-in, and that each is keyed once per order.
func TestForFollowUp(t *testing.T) {
	t.Parallel()
	cases := []struct {
		template          string
		optedIn           bool
		wantOK, warehouse bool
	}{
		{notify.TemplateFulfillmentReminder, false, true, true},
		{notify.TemplateFulfillmentReminder, true, true, true},
		{notify.TemplateReviewRequest, true, true, false},
		{notify.TemplateReviewRequest, false, false, false},
		{notify.TemplateDeliveryConfirmation, false, true, false},
		{notify.TemplateOrderConfirmation, true, false, false}, // not a follow-up
	}
	for _, c := range cases {
		p, warehouse, ok := notify.ForFollowUp(c.template, "o1", c.optedIn)
		if ok != c.wantOK || warehouse != c.warehouse {
			t.Errorf("%s (opted in %v): ok %v warehouse %v, want %v %v", c.template, c.optedIn, ok, warehouse, c.wantOK, c.warehouse)
			continue
		}
		if ok && (p.Template != c.template || p.Channel != notify.ChannelEmail || p.DedupeKey != c.template+":o1") {
			t.Errorf("%s: planned %+v, want an email keyed %s:o1", c.template, p, c.template)
		}
	}
}
