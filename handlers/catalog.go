package handlers

import (
	"context"
	"strings"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/store"
)

// isAdmin reports whether an authenticated admin is calling; public
// operations run with or without a token.
func isAdmin(ctx context.Context) bool {
	c, err := claims(ctx)
	return err == nil && c.IsAdmin()
}

func page(limit *gen.Limit, cursor *gen.Cursor) store.Page {
	p := store.Page{}
	if limit != nil {
		p.Limit = int(*limit)
	}
	if cursor != nil {
		p.Cursor = *cursor
	}
	return p
}

// ListProducts lists products in the requested sort and filters (active
// ones, newest first, by default); only admins may ask for archived ones.
// Searches (?q=) count against a per-IP hourly quota.
func (s *Server) ListProducts(ctx context.Context, req gen.ListProductsRequestObject) (gen.ListProductsResponseObject, error) {
	admin := isAdmin(ctx)
	prm := req.Params
	f := store.ProductFilter{
		MinPriceCents: prm.MinPriceCents,
		MaxPriceCents: prm.MaxPriceCents,
		InStock:       prm.InStock != nil && *prm.InStock,
		Featured:      prm.Featured != nil && *prm.Featured,
	}
	if prm.Status != nil {
		// Refused even for status=active: the parameter itself is an admin
		// tool, and answering it differently by role would hint at archives.
		if !admin {
			return nil, shopd.Errorf(shopd.EForbidden, "Only admins may list products by status.")
		}
		f.Status = string(*prm.Status)
	}
	if prm.Sort != nil {
		f.Sort = string(*prm.Sort)
	}
	if prm.Category != nil {
		f.Category = *prm.Category
	}
	if prm.Q != nil {
		f.Query = strings.TrimSpace(*prm.Q)
	}
	if f.MinPriceCents != nil && f.MaxPriceCents != nil && *f.MinPriceCents > *f.MaxPriceCents {
		return nil, shopd.FieldError("minPriceCents", "Must not be greater than maxPriceCents.")
	}
	if f.Query != "" {
		r, err := s.limiter.Allow(ctx, "search:"+clientIP(ctx), s.searchLimit)
		if err != nil {
			return nil, err
		}
		if !r.Allowed {
			return nil, &shopd.Error{Code: shopd.ERateLimited, Message: "Search quota exceeded; try again later.", RetryAfter: r.RetryAfter}
		}
	}
	pg := store.Page{}
	if prm.Limit != nil {
		pg.Limit = int(*prm.Limit)
	}
	if prm.Cursor != nil {
		pg.Cursor = *prm.Cursor
	}
	items, next, err := s.store.ListProducts(ctx, f, pg)
	if err != nil {
		return nil, err
	}
	out, err := s.toAPIProducts(ctx, items, admin)
	if err != nil {
		return nil, err
	}
	return gen.ListProducts200JSONResponse{Items: out, NextCursor: nextCursor(next)}, nil
}

// ListCategories lists the categories of active products with their counts.
func (s *Server) ListCategories(ctx context.Context, _ gen.ListCategoriesRequestObject) (gen.ListCategoriesResponseObject, error) {
	cs, err := s.store.Categories(ctx)
	if err != nil {
		return nil, err
	}
	out := gen.ListCategories200JSONResponse{Items: make([]gen.Category, len(cs))}
	for i, c := range cs {
		out.Items[i] = gen.Category{Name: c.Name, ProductCount: c.ProductCount}
	}
	return out, nil
}

// GetProduct returns a product; archived ones only to admins.
func (s *Server) GetProduct(ctx context.Context, req gen.GetProductRequestObject) (gen.GetProductResponseObject, error) {
	admin := isAdmin(ctx)
	p, err := s.store.Product(ctx, req.ProductId, admin)
	if err != nil {
		return nil, err
	}
	out, err := s.toAPIProductWithImages(ctx, p, admin)
	if err != nil {
		return nil, err
	}
	if ec := echoContext(ctx); ec != nil {
		ec.Set(productVersionKey, p.Version) // for the catalog cache
	}
	return gen.GetProduct200JSONResponse(out), nil
}

// CreateProduct adds a product to the catalog.
func (s *Server) CreateProduct(ctx context.Context, req gen.CreateProductRequestObject) (gen.CreateProductResponseObject, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, err
	}
	b := req.Body
	np := store.NewProduct{
		SKU:                 b.Sku,
		Name:                strings.TrimSpace(b.Name),
		PriceCents:          b.PriceCents,
		CompareAtPriceCents: b.CompareAtPriceCents,
		CostPriceCents:      b.CostPriceCents,
		Category:            b.Category,
		Stock:               int(b.Stock),
		LowStockThreshold:   10,
		IsActive:            true,
	}
	if np.Name == "" {
		return nil, shopd.FieldError("name", "Must not be blank.")
	}
	if b.Description != nil {
		np.Description = *b.Description
	}
	if b.Currency != nil {
		np.Currency = *b.Currency
	}
	if b.Tags != nil {
		np.Tags = *b.Tags
	}
	if b.LowStockThreshold != nil {
		np.LowStockThreshold = int(*b.LowStockThreshold)
	}
	if b.IsActive != nil {
		np.IsActive = *b.IsActive
	}
	if b.IsFeatured != nil {
		np.IsFeatured = *b.IsFeatured
	}
	if b.WeightGrams != nil {
		w := int(*b.WeightGrams)
		np.WeightGrams = &w
	}
	if d, err := b.Dimensions.Get(); err == nil {
		dims := toStoreDimensions(d)
		np.Dimensions = &dims
	}
	p, err := s.store.CreateProduct(ctx, np, c.UserID)
	if err != nil {
		return nil, err
	}
	out, err := s.toAPIProductWithImages(ctx, p, true)
	if err != nil {
		return nil, err
	}
	return gen.CreateProduct201JSONResponse(out), nil
}

// UpdateProduct patches a product; stock is not patchable (it moves only
// through inventory adjustments and orders).
func (s *Server) UpdateProduct(ctx context.Context, req gen.UpdateProductRequestObject) (gen.UpdateProductResponseObject, error) {
	b := req.Body
	patch := store.ProductPatch{
		SKU:                 b.Sku,
		Description:         b.Description,
		PriceCents:          b.PriceCents,
		CompareAtPriceCents: changeOf(b.CompareAtPriceCents, same[int64]),
		CostPriceCents:      changeOf(b.CostPriceCents, same[int64]),
		Currency:            b.Currency,
		Category:            changeOf(b.Category, same[string]),
		Tags:                b.Tags,
		IsActive:            b.IsActive,
		IsFeatured:          b.IsFeatured,
		WeightGrams:         changeOf(b.WeightGrams, func(v int32) int { return int(v) }),
		Dimensions:          changeOf(b.Dimensions, toStoreDimensions),
	}
	if b.Name != nil {
		// Trimmed as on create.
		name := strings.TrimSpace(*b.Name)
		if name == "" {
			return nil, shopd.FieldError("name", "Must not be blank.")
		}
		patch.Name = &name
	}
	if b.LowStockThreshold != nil {
		v := int(*b.LowStockThreshold)
		patch.LowStockThreshold = &v
	}
	p, err := s.store.UpdateProduct(ctx, req.ProductId, patch)
	if err != nil {
		return nil, err
	}
	out, err := s.toAPIProductWithImages(ctx, p, true)
	if err != nil {
		return nil, err
	}
	return gen.UpdateProduct200JSONResponse(out), nil
}

// ArchiveProduct hides a product; orders and the ledger keep referring to it.
func (s *Server) ArchiveProduct(ctx context.Context, req gen.ArchiveProductRequestObject) (gen.ArchiveProductResponseObject, error) {
	p, err := s.store.ArchiveProduct(ctx, req.ProductId)
	if err != nil {
		return nil, err
	}
	out, err := s.toAPIProductWithImages(ctx, p, true)
	if err != nil {
		return nil, err
	}
	return gen.ArchiveProduct200JSONResponse(out), nil
}

// AdjustInventory moves stock and records it in the ledger, atomically.
func (s *Server) AdjustInventory(ctx context.Context, req gen.AdjustInventoryRequestObject) (gen.AdjustInventoryResponseObject, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, err
	}
	t, err := s.store.AdjustStock(ctx, store.StockChange{
		ProductID:      req.ProductId,
		QuantityChange: int(req.Body.QuantityChange),
		Type:           string(req.Body.Type),
		Note:           req.Body.Note,
		ActorID:        c.UserID,
	})
	if err != nil {
		return nil, err
	}
	return gen.AdjustInventory201JSONResponse{
		ProductId:   t.ProductID,
		Stock:       int32(t.StockAfter),
		Transaction: toAPIInventoryTransaction(t),
	}, nil
}

// ListInventoryTransactions pages through a product's ledger, newest first.
func (s *Server) ListInventoryTransactions(ctx context.Context, req gen.ListInventoryTransactionsRequestObject) (gen.ListInventoryTransactionsResponseObject, error) {
	items, next, err := s.store.InventoryTransactions(ctx, req.ProductId, page(req.Params.Limit, req.Params.Cursor))
	if err != nil {
		return nil, err
	}
	out := gen.ListInventoryTransactions200JSONResponse{Items: make([]gen.InventoryTransaction, len(items)), NextCursor: nextCursor(next)}
	for i, t := range items {
		out.Items[i] = toAPIInventoryTransaction(t)
	}
	return out, nil
}
