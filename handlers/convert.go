package handlers

import (
	"strconv"
	"time"

	"github.com/oapi-codegen/nullable"
	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/store"
)

func ptr[T any](v T) *T { return &v }

// nullableOf turns a pointer into a JSON value that is null when nil.
func nullableOf[T any](p *T) nullable.Nullable[T] {
	if p == nil {
		return nullable.NewNullNullable[T]()
	}
	return nullable.NewNullableWithValue(*p)
}

// changeOf reads a PATCH field: absent leaves it, null clears it.
func changeOf[T, U any](n nullable.Nullable[T], conv func(T) U) store.Change[U] {
	if !n.IsSpecified() {
		return store.Change[U]{}
	}
	if n.IsNull() {
		return store.Change[U]{Set: true}
	}
	v := conv(n.MustGet())
	return store.Change[U]{Set: true, Value: &v}
}

func same[T any](v T) T { return v }

func int32Ptr(p *int) *int32 {
	if p == nil {
		return nil
	}
	v := int32(*p)
	return &v
}

func nextCursor(c string) nullable.Nullable[string] {
	if c == "" {
		return nullable.NewNullNullable[string]()
	}
	return nullable.NewNullableWithValue(c)
}

// toAPICustomer is a profile without saved addresses: a new account's.
func toAPICustomer(u store.User) gen.Customer {
	return toAPICustomerProfile(store.Customer{User: u})
}

// toAPICustomerProfile is the profile a customer sees of themselves.
func toAPICustomerProfile(c store.Customer) gen.Customer {
	addrs := make([]gen.SavedAddress, len(c.Addresses))
	for i, a := range c.Addresses {
		addrs[i] = toAPISavedAddress(a)
	}
	return gen.Customer{
		Id:              c.ID,
		Email:           openapi_types.Email(c.Email),
		FirstName:       c.FirstName,
		LastName:        c.LastName,
		Phone:           nullableOf(c.Phone),
		Role:            gen.CustomerRole(c.Role),
		MarketingOptIn:  c.MarketingOptIn,
		Addresses:       addrs,
		TotalOrders:     int32(c.TotalOrders),
		TotalSpentCents: c.TotalSpentCents,
		Currency:        store.StatsCurrency,
		CreatedAt:       c.CreatedAt.UTC(),
		UpdatedAt:       c.UpdatedAt.UTC(),
	}
}

// toAPIAdminCustomer is the profile with what only admins see.
func toAPIAdminCustomer(c store.Customer) gen.AdminCustomer {
	p := toAPICustomerProfile(c)
	var lastOrderAt *time.Time
	if c.LastOrderAt != nil {
		t := c.LastOrderAt.UTC()
		lastOrderAt = &t
	}
	return gen.AdminCustomer{
		Id:               p.Id,
		Email:            p.Email,
		FirstName:        p.FirstName,
		LastName:         p.LastName,
		Phone:            p.Phone,
		Role:             gen.AdminCustomerRole(p.Role),
		MarketingOptIn:   p.MarketingOptIn,
		Addresses:        p.Addresses,
		TotalOrders:      p.TotalOrders,
		TotalSpentCents:  p.TotalSpentCents,
		Currency:         p.Currency,
		StripeCustomerId: nullableOf(c.StripeCustomerID),
		LastOrderAt:      nullableOf(lastOrderAt),
		CreatedAt:        p.CreatedAt,
		UpdatedAt:        p.UpdatedAt,
	}
}

func toAPISavedAddress(a store.SavedAddress) gen.SavedAddress {
	return gen.SavedAddress{
		Id:         a.ID,
		FirstName:  a.FirstName,
		LastName:   a.LastName,
		Line1:      a.Line1,
		Line2:      nullableOf(a.Line2),
		City:       a.City,
		Region:     nullableOf(a.Region),
		PostalCode: a.PostalCode,
		Country:    a.Country,
		Phone:      nullableOf(a.Phone),
		IsDefault:  a.IsDefault,
		CreatedAt:  a.CreatedAt.UTC(),
		UpdatedAt:  a.UpdatedAt.UTC(),
	}
}

// toAPIProduct shows cost prices to admins only; images are the product's,
// signed.
func toAPIProduct(p store.Product, admin bool, images []gen.ProductImage) gen.Product {
	out := gen.Product{
		Id:                  p.ID,
		Sku:                 p.SKU,
		Name:                p.Name,
		Description:         p.Description,
		PriceCents:          p.PriceCents,
		CompareAtPriceCents: nullableOf(p.CompareAtPriceCents),
		Currency:            p.Currency,
		Category:            nullableOf(p.Category),
		Tags:                []string(p.Tags),
		Images:              images,
		Stock:               int32(p.Stock),
		LowStockThreshold:   int32(p.LowStockThreshold),
		IsActive:            p.IsActive,
		IsFeatured:          p.IsFeatured,
		WeightGrams:         nullableOf(int32Ptr(p.WeightGrams)),
		CreatedAt:           p.CreatedAt.UTC(),
		UpdatedAt:           p.UpdatedAt.UTC(),
	}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	if out.Images == nil {
		out.Images = []gen.ProductImage{}
	}
	if p.LengthMm != nil && p.WidthMm != nil && p.HeightMm != nil {
		out.Dimensions = nullable.NewNullableWithValue(gen.Dimensions{
			LengthMm: int32(*p.LengthMm), WidthMm: int32(*p.WidthMm), HeightMm: int32(*p.HeightMm),
		})
	} else {
		out.Dimensions = nullable.NewNullNullable[gen.Dimensions]()
	}
	if admin {
		out.CostPriceCents = nullableOf(p.CostPriceCents)
	}
	return out
}

func toAPIInventoryTransaction(t store.InventoryTransaction) gen.InventoryTransaction {
	return gen.InventoryTransaction{
		Id:             strconv.FormatInt(t.ID, 10),
		ProductId:      t.ProductID,
		Sku:            t.SKU,
		QuantityChange: int32(t.QuantityChange),
		Type:           gen.InventoryTransactionType(t.Type),
		StockAfter:     int32(t.StockAfter),
		ReferenceId:    nullableOf(t.ReferenceID),
		Note:           nullableOf(t.Note),
		CreatedAt:      t.CreatedAt.UTC(),
	}
}

func toStoreDimensions(d gen.Dimensions) store.Dimensions {
	return store.Dimensions{LengthMm: int(d.LengthMm), WidthMm: int(d.WidthMm), HeightMm: int(d.HeightMm)}
}
