package handlers

import (
	"context"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/gen"
)

// errMoneyPath answers the cart, checkout and order operations until they land.
var errMoneyPath = shopd.Errorf(shopd.EUnavailable, "Cart, checkout and orders are not available yet.")

// FulfillOrder is part of the money path.
func (s *Server) FulfillOrder(ctx context.Context, _ gen.FulfillOrderRequestObject) (gen.FulfillOrderResponseObject, error) {
	return nil, errMoneyPath
}

// RefundOrder is part of the money path.
func (s *Server) RefundOrder(ctx context.Context, _ gen.RefundOrderRequestObject) (gen.RefundOrderResponseObject, error) {
	return nil, errMoneyPath
}

// ClearCart is part of the money path.
func (s *Server) ClearCart(ctx context.Context, _ gen.ClearCartRequestObject) (gen.ClearCartResponseObject, error) {
	return nil, errMoneyPath
}

// GetCart is part of the money path.
func (s *Server) GetCart(ctx context.Context, _ gen.GetCartRequestObject) (gen.GetCartResponseObject, error) {
	return nil, errMoneyPath
}

// AddCartItem is part of the money path.
func (s *Server) AddCartItem(ctx context.Context, _ gen.AddCartItemRequestObject) (gen.AddCartItemResponseObject, error) {
	return nil, errMoneyPath
}

// RemoveCartItem is part of the money path.
func (s *Server) RemoveCartItem(ctx context.Context, _ gen.RemoveCartItemRequestObject) (gen.RemoveCartItemResponseObject, error) {
	return nil, errMoneyPath
}

// SetCartItemQuantity is part of the money path.
func (s *Server) SetCartItemQuantity(ctx context.Context, _ gen.SetCartItemQuantityRequestObject) (gen.SetCartItemQuantityResponseObject, error) {
	return nil, errMoneyPath
}

// Checkout is part of the money path.
func (s *Server) Checkout(ctx context.Context, _ gen.CheckoutRequestObject) (gen.CheckoutResponseObject, error) {
	return nil, errMoneyPath
}

// ListOrders is part of the money path.
func (s *Server) ListOrders(ctx context.Context, _ gen.ListOrdersRequestObject) (gen.ListOrdersResponseObject, error) {
	return nil, errMoneyPath
}

// GetOrder is part of the money path.
func (s *Server) GetOrder(ctx context.Context, _ gen.GetOrderRequestObject) (gen.GetOrderResponseObject, error) {
	return nil, errMoneyPath
}

// CancelOrder is part of the money path.
func (s *Server) CancelOrder(ctx context.Context, _ gen.CancelOrderRequestObject) (gen.CancelOrderResponseObject, error) {
	return nil, errMoneyPath
}

// ListOrderEvents is part of the money path.
func (s *Server) ListOrderEvents(ctx context.Context, _ gen.ListOrderEventsRequestObject) (gen.ListOrderEventsResponseObject, error) {
	return nil, errMoneyPath
}
