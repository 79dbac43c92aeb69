package store

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/internal/pgtest"
)

func newCustomer(t *testing.T, s *Store) User {
	t.Helper()
	u, err := s.CreateUser(context.Background(), NewUser{
		Email: "c-" + uuid.NewString() + "@example.com", PasswordHash: "x", Role: "customer", FirstName: "Ada", LastName: "Lovelace",
	})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func address(city string) AddressFields {
	return AddressFields{FirstName: "Ada", LastName: "Lovelace", Line1: "1 Main Street", City: city, PostalCode: "N1 1AA", Country: "GB"}
}

// TestAddressDefaultIsEnforcedByTheDatabase: writers that skip the store's
// rules still cannot leave two defaults, or addresses without a default.
func TestAddressDefaultIsEnforcedByTheDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(pgtest.NewDB(t))
	u := newCustomer(t, s)
	first, err := s.AddAddress(ctx, u.ID, address("London"), false)
	if err != nil || !first.IsDefault {
		t.Fatalf("first address: %+v, %v; want the default", first, err)
	}
	const insert = `INSERT INTO customer_addresses (user_id, first_name, last_name, line1, city, postal_code, country, is_default)
		VALUES ($1, 'Ada', 'Lovelace', '2 Side Street', 'Leeds', 'LS1 1AA', 'GB', $2)`
	pqCode := func(err error) string {
		var pe *pq.Error
		if errors.As(err, &pe) {
			return string(pe.Code) + " " + pe.Constraint
		}
		return ""
	}
	if _, err := s.DB().ExecContext(ctx, insert, u.ID, true); pqCode(err) != "23505 customer_addresses_one_default" {
		t.Errorf("a second default: %v, want a unique violation of customer_addresses_one_default", err)
	}
	other := newCustomer(t, s)
	if _, err := s.DB().ExecContext(ctx, insert, other.ID, false); pqCode(err) != "23514 customer_addresses_have_default" {
		t.Errorf("an address book without a default: %v, want check violation customer_addresses_have_default", err)
	}
	if _, err := s.DB().ExecContext(ctx, insert, u.ID, false); err != nil {
		t.Fatalf("a second, non-default address: %v", err)
	}
	if _, err := s.DB().ExecContext(ctx, `DELETE FROM customer_addresses WHERE id = $1`, first.ID); pqCode(err) != "23514 customer_addresses_have_default" {
		t.Errorf("deleting the default behind the store's back: %v, want check violation", err)
	}
	var defaults int
	if err := s.DB().GetContext(ctx, &defaults, `SELECT count(*) FROM customer_addresses WHERE user_id = $1 AND is_default`, u.ID); err != nil || defaults != 1 {
		t.Errorf("defaults = %d, %v; want 1", defaults, err)
	}
}

func TestAddressStoreRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(pgtest.NewDB(t))
	u, stranger := newCustomer(t, s), newCustomer(t, s)
	a, _ := s.AddAddress(ctx, u.ID, address("London"), false)
	b, err := s.AddAddress(ctx, u.ID, address("Leeds"), false)
	if err != nil || b.IsDefault {
		t.Fatalf("second address: %+v, %v", b, err)
	}
	c, _ := s.AddAddress(ctx, u.ID, address("York"), false)

	no := false
	for _, tc := range []struct {
		name    string
		user    string
		address string
		update  AddressUpdate
		code    string
	}{
		{"another customer's address", stranger.ID, a.ID, AddressUpdate{City: &a.City}, shopd.ENotFound},
		{"a malformed id", u.ID, "nope", AddressUpdate{City: &a.City}, shopd.ENotFound},
		{"an unknown user", uuid.NewString(), a.ID, AddressUpdate{City: &a.City}, shopd.ENotFound},
		{"unsetting the default", u.ID, a.ID, AddressUpdate{IsDefault: &no}, shopd.EConflict},
	} {
		if _, err := s.UpdateAddress(ctx, tc.user, tc.address, tc.update); shopd.ErrorCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
	if err := s.DeleteAddress(ctx, stranger.ID, a.ID); shopd.ErrorCode(err) != shopd.ENotFound {
		t.Errorf("deleting another customer's address: %v, want not found", err)
	}
	// Deleting the default promotes the newest remaining address.
	if err := s.DeleteAddress(ctx, u.ID, a.ID); err != nil {
		t.Fatal(err)
	}
	got, err := s.Customer(ctx, u.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Addresses) != 2 || got.Addresses[0].ID != c.ID || !got.Addresses[0].IsDefault || got.Addresses[1].IsDefault {
		t.Errorf("after deleting the default: %+v, want York (newest) the default and first", got.Addresses)
	}
	if _, err := s.Customer(ctx, stranger.ID, true); err != nil {
		t.Errorf("a customer without addresses: %v", err)
	}
}
