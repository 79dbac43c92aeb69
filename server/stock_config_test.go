package server

import (
	"strings"
	"testing"
	"time"
)

// TestStockWorkflowConfig: ABANDONED_CART_AFTER and INVENTORY_REPORT_CRON
// default to 24h and 09:00 UTC daily, take overrides, and a bad value of
// either stops the server from starting, naming the variable.
func TestStockWorkflowConfig(t *testing.T) {
	t.Parallel()
	c, err := LoadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.AbandonedCartAfter != 24*time.Hour || c.InventoryReportCron != "0 9 * * *" || c.InventoryEmail != "inventory@localhost" {
		t.Errorf("defaults: after %v, cron %q, inventory email %q; want 24h, \"0 9 * * *\", inventory@localhost",
			c.AbandonedCartAfter, c.InventoryReportCron, c.InventoryEmail)
	}
	env := map[string]string{"ABANDONED_CART_AFTER": "90m", "INVENTORY_REPORT_CRON": "30 6 * * 1-5", "INVENTORY_EMAIL": "stock@shop.example"}
	c, err = LoadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.AbandonedCartAfter != 90*time.Minute || c.InventoryReportCron != "30 6 * * 1-5" || c.InventoryEmail != "stock@shop.example" {
		t.Errorf("overrides: after %v, cron %q, inventory email %q", c.AbandonedCartAfter, c.InventoryReportCron, c.InventoryEmail)
	}
	for _, bad := range []struct{ variable, value string }{
		{"ABANDONED_CART_AFTER", "tomorrow"},
		{"ABANDONED_CART_AFTER", "0s"},
		{"INVENTORY_REPORT_CRON", "every morning"},
		{"INVENTORY_REPORT_CRON", "0 0 9 * * *"},
	} {
		_, err := LoadConfig(func(k string) string {
			if k == bad.variable {
				return bad.value
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), bad.variable) {
			t.Errorf("%s=%q: error %v, want one naming the variable", bad.variable, bad.value, err)
		}
	}
}
