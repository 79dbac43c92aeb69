package handlers

import (
	"context"
	"strings"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/store"
)

// UpdateMe changes the caller's names, phone and marketing preference.
// Server-owned fields never reach it: the spec's request schema refuses
// them (400) before the handler runs.
func (s *Server) UpdateMe(ctx context.Context, req gen.UpdateMeRequestObject) (gen.UpdateMeResponseObject, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, err
	}
	b := req.Body
	first, err := nonBlank("firstName", b.FirstName)
	if err != nil {
		return nil, err
	}
	last, err := nonBlank("lastName", b.LastName)
	if err != nil {
		return nil, err
	}
	_, err = s.store.UpdateProfile(ctx, c.UserID, store.ProfileUpdate{
		FirstName: first, LastName: last, Phone: changeOf(b.Phone, same[string]), MarketingOptIn: b.MarketingOptIn,
	})
	if err != nil {
		return nil, accountGone(err)
	}
	cust, err := s.store.Customer(ctx, c.UserID, false)
	if err != nil {
		return nil, accountGone(err)
	}
	return gen.UpdateMe200JSONResponse(toAPICustomerProfile(cust)), nil
}

// CreateAddress saves an address in the caller's address book.
func (s *Server) CreateAddress(ctx context.Context, req gen.CreateAddressRequestObject) (gen.CreateAddressResponseObject, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, err
	}
	b := req.Body
	fields := store.AddressFields{
		FirstName: strings.TrimSpace(b.FirstName), LastName: strings.TrimSpace(b.LastName),
		Line1: strings.TrimSpace(b.Line1), Line2: b.Line2, City: strings.TrimSpace(b.City), Region: b.Region,
		PostalCode: strings.TrimSpace(b.PostalCode), Country: b.Country, Phone: b.Phone,
	}
	for _, f := range []struct{ name, value string }{
		{"firstName", fields.FirstName}, {"lastName", fields.LastName}, {"line1", fields.Line1},
		{"city", fields.City}, {"postalCode", fields.PostalCode},
	} {
		if f.value == "" {
			return nil, shopd.FieldError(f.name, "Must not be blank.")
		}
	}
	a, err := s.store.AddAddress(ctx, c.UserID, fields, b.IsDefault != nil && *b.IsDefault)
	if err != nil {
		return nil, err
	}
	return gen.CreateAddress201JSONResponse(toAPISavedAddress(a)), nil
}

// UpdateAddress changes one of the caller's saved addresses.
func (s *Server) UpdateAddress(ctx context.Context, req gen.UpdateAddressRequestObject) (gen.UpdateAddressResponseObject, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, err
	}
	b := req.Body
	u := store.AddressUpdate{
		Country: b.Country, IsDefault: b.IsDefault,
		Line2: changeOf(b.Line2, same[string]), Region: changeOf(b.Region, same[string]), Phone: changeOf(b.Phone, same[string]),
	}
	for _, f := range []struct {
		name string
		in   *string
		out  **string
	}{
		{"firstName", b.FirstName, &u.FirstName}, {"lastName", b.LastName, &u.LastName}, {"line1", b.Line1, &u.Line1},
		{"city", b.City, &u.City}, {"postalCode", b.PostalCode, &u.PostalCode},
	} {
		if *f.out, err = nonBlank(f.name, f.in); err != nil {
			return nil, err
		}
	}
	a, err := s.store.UpdateAddress(ctx, c.UserID, req.AddressId, u)
	if err != nil {
		return nil, err
	}
	return gen.UpdateAddress200JSONResponse(toAPISavedAddress(a)), nil
}

// DeleteAddress removes one of the caller's saved addresses.
func (s *Server) DeleteAddress(ctx context.Context, req gen.DeleteAddressRequestObject) (gen.DeleteAddressResponseObject, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.store.DeleteAddress(ctx, c.UserID, req.AddressId); err != nil {
		return nil, err
	}
	return gen.DeleteAddress204Response{}, nil
}

// ListCustomers is the admins' customer search; the spec's admin scope
// keeps everyone else out (403) before it runs.
func (s *Server) ListCustomers(ctx context.Context, req gen.ListCustomersRequestObject) (gen.ListCustomersResponseObject, error) {
	q := ""
	if req.Params.Q != nil {
		q = *req.Params.Q
	}
	items, next, err := s.store.ListCustomers(ctx, q, page(req.Params.Limit, req.Params.Cursor))
	if err != nil {
		return nil, err
	}
	out := gen.ListCustomers200JSONResponse{Items: make([]gen.AdminCustomer, len(items)), NextCursor: nextCursor(next)}
	for i, c := range items {
		out.Items[i] = toAPIAdminCustomer(c)
	}
	return out, nil
}

// GetCustomer is one customer as admins see them.
func (s *Server) GetCustomer(ctx context.Context, req gen.GetCustomerRequestObject) (gen.GetCustomerResponseObject, error) {
	c, err := s.store.Customer(ctx, req.CustomerId, true)
	if err != nil {
		return nil, err
	}
	return gen.GetCustomer200JSONResponse(toAPIAdminCustomer(c)), nil
}

// nonBlank trims a name-like field given in a request; blank is a
// validation error on field, absent stays absent.
func nonBlank(field string, v *string) (*string, error) {
	if v == nil {
		return nil, nil
	}
	t := strings.TrimSpace(*v)
	if t == "" {
		return nil, shopd.FieldError(field, "Must not be blank.")
	}
	return &t, nil
}

// accountGone answers 401 when the caller's own account is not found: a
// valid token whose account was deleted, as GetMe does.
func accountGone(err error) error {
	if shopd.ErrorCode(err) == shopd.ENotFound {
		return shopd.Errorf(shopd.EUnauthorized, "The account no longer exists.")
	}
	return err
}
