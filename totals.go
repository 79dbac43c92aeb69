package shopd

// Pricing holds the configurable totals rules. Money is integer minor units.
type Pricing struct {
	TaxRateBPS            int64 // tax in basis points of the subtotal (1000 = 10%)
	ShippingFlatCents     int64 // shipping when the subtotal is not over the threshold
	FreeShippingOverCents int64 // subtotals strictly above this ship free
}

// DefaultPricing is API.md's default: 10% tax, 10.00 shipping unless the
// subtotal is over 100.00.
var DefaultPricing = Pricing{TaxRateBPS: 1000, ShippingFlatCents: 1000, FreeShippingOverCents: 10000}

// Totals are an order's money, frozen at checkout.
type Totals struct {
	SubtotalCents, TaxCents, ShippingCents, DiscountCents, TotalCents int64
}

// CheckoutTotals is the totals checkout charges for a cart whose lines
// come to subtotalCents. Checkout and the cart's preview both call it, so an
// unchanged cart checks out to exactly the totals it shows; the discount is
// 0 until promotions exist, and when they do they belong here.
func (p Pricing) CheckoutTotals(subtotalCents int64) Totals {
	return p.Totals(subtotalCents, 0)
}

// Totals computes the order totals of a subtotal. Tax is rounded half up;
// no floating point is involved.
func (p Pricing) Totals(subtotalCents, discountCents int64) Totals {
	tax := (subtotalCents*p.TaxRateBPS + 5000) / 10000
	shipping := p.ShippingFlatCents
	if subtotalCents > p.FreeShippingOverCents {
		shipping = 0
	}
	return Totals{
		SubtotalCents: subtotalCents,
		TaxCents:      tax,
		ShippingCents: shipping,
		DiscountCents: discountCents,
		TotalCents:    subtotalCents + tax + shipping - discountCents,
	}
}
