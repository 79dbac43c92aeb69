package handlers

import (
	"context"

	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/store"
)

// GetCart returns the caller's cart at current catalog prices.
func (s *Server) GetCart(ctx context.Context, _ gen.GetCartRequestObject) (gen.GetCartResponseObject, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, err
	}
	cart, err := s.store.Cart(ctx, c.UserID)
	if err != nil {
		return nil, err
	}
	out, err := s.toAPICart(ctx, cart)
	if err != nil {
		return nil, err
	}
	return gen.GetCart200JSONResponse(out), nil
}

// ClearCart empties the caller's cart; emptying an empty cart is no error.
func (s *Server) ClearCart(ctx context.Context, _ gen.ClearCartRequestObject) (gen.ClearCartResponseObject, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, err
	}
	cart, err := s.store.ClearCart(ctx, c.UserID)
	if err != nil {
		return nil, err
	}
	out, err := s.toAPICart(ctx, cart)
	if err != nil {
		return nil, err
	}
	return gen.ClearCart200JSONResponse(out), nil
}

// AddCartItem adds to the product's line in the caller's cart.
func (s *Server) AddCartItem(ctx context.Context, req gen.AddCartItemRequestObject) (gen.AddCartItemResponseObject, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, err
	}
	cart, err := s.store.AddToCart(ctx, c.UserID, req.Body.ProductId, int(req.Body.Quantity))
	if err != nil {
		return nil, err
	}
	out, err := s.toAPICart(ctx, cart)
	if err != nil {
		return nil, err
	}
	return gen.AddCartItem201JSONResponse(out), nil
}

// SetCartItemQuantity sets the quantity of a line in the caller's cart.
func (s *Server) SetCartItemQuantity(ctx context.Context, req gen.SetCartItemQuantityRequestObject) (gen.SetCartItemQuantityResponseObject, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, err
	}
	cart, err := s.store.SetCartQuantity(ctx, c.UserID, req.ProductId, int(req.Body.Quantity))
	if err != nil {
		return nil, err
	}
	out, err := s.toAPICart(ctx, cart)
	if err != nil {
		return nil, err
	}
	return gen.SetCartItemQuantity200JSONResponse(out), nil
}

// RemoveCartItem removes a line from the caller's cart.
func (s *Server) RemoveCartItem(ctx context.Context, req gen.RemoveCartItemRequestObject) (gen.RemoveCartItemResponseObject, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, err
	}
	cart, err := s.store.RemoveFromCart(ctx, c.UserID, req.ProductId)
	if err != nil {
		return nil, err
	}
	out, err := s.toAPICart(ctx, cart)
	if err != nil {
		return nil, err
	}
	return gen.RemoveCartItem200JSONResponse(out), nil
}

// toAPICart renders a cart with its checkout preview, priced by the orders
// service's Pricing: the one checkout charges with.
func (s *Server) toAPICart(ctx context.Context, c store.Cart) (gen.Cart, error) {
	totals := c.Totals(s.orders.Pricing)
	out := gen.Cart{
		Items:         make([]gen.CartItem, len(c.Lines)),
		SubtotalCents: totals.SubtotalCents,
		TaxCents:      totals.TaxCents,
		ShippingCents: totals.ShippingCents,
		DiscountCents: totals.DiscountCents,
		TotalCents:    totals.TotalCents,
		Currency:      c.Currency(),
		UpdatedAt:     nullableTime(c.UpdatedAt),
	}
	for i, l := range c.Lines {
		imageURL, err := s.cartImageURL(ctx, l)
		if err != nil {
			return gen.Cart{}, err
		}
		out.Items[i] = gen.CartItem{
			ProductId:      l.ProductID,
			Sku:            l.SKU,
			Name:           l.Name,
			PriceCents:     l.PriceCents,
			Quantity:       int32(l.Quantity),
			LineTotalCents: l.LineTotalCents(),
			Available:      l.Available(),
			ImageUrl:       imageURL,
		}
	}
	return out, nil
}
