// Package demo is the demo shop that local runs (cmd/shopdev) and the
// benchmark (cmd/shopbench) start with: 50 products in six categories.
// It is development tooling; the server binary does not link it.
package demo

import (
	"context"
	"fmt"
	"strings"

	"github.com/shopd/shopd/store"
)

// demoCatalog is the seeded demo shop: name, description, price, stock per
// category. Low stocks are deliberate, so checkout conflicts are easy to see.
var demoCatalog = map[string][]struct {
	name, desc string
	price      int64
	stock      int
}{
	"keyboards": {
		{"Mechanical Keyboard", "Tenkeyless, hot-swappable brown switches.", 8900, 40},
		{"Low-Profile Keyboard", "Slim aluminium frame, scissor switches.", 6900, 25},
		{"Split Ergonomic Keyboard", "Two halves, tenting kit included.", 18900, 8},
		{"Compact 60% Keyboard", "PBT keycaps, USB-C, RGB backlight.", 7400, 30},
		{"Wireless Keyboard", "Bluetooth 5.1, three device slots.", 5900, 50},
		{"Keycap Set", "Cherry-profile double-shot PBT, 140 keys.", 4900, 60},
		{"Switch Tester", "Nine switch types on a walnut base.", 1900, 3},
		{"Wrist Rest", "Solid oak, fits tenkeyless boards.", 3500, 45},
	},
	"mice": {
		{"Ergonomic Mouse", "Vertical grip, six buttons, silent clicks.", 4900, 35},
		{"Gaming Mouse", "26k DPI sensor, 58 g honeycomb shell.", 6900, 20},
		{"Travel Mouse", "Folds flat, Bluetooth and 2.4 GHz.", 2900, 70},
		{"Trackball", "Thumb-operated, precision scroll ring.", 8900, 12},
		{"Mouse Pad XL", "900 x 400 mm stitched-edge cloth.", 2400, 80},
		{"Trackpad", "Glass surface, multi-touch gestures.", 12900, 9},
		{"Mouse Bungee", "Keeps the cable off the desk.", 1500, 5},
		{"Mouse Skates", "PTFE feet, two sets.", 900, 100},
	},
	"cables": {
		{"USB-C Cable", "1 m braided, 100 W, USB 3.2.", 1200, 200},
		{"USB-C to HDMI Cable", "4K at 60 Hz, 2 m.", 2200, 90},
		{"Coiled Keyboard Cable", "Aviator connector, 1.5 m coil.", 3900, 25},
		{"Thunderbolt 4 Cable", "40 Gbps, 0.8 m, certified.", 5900, 30},
		{"Ethernet Cable", "Cat 6a, 3 m, snagless.", 900, 150},
		{"Cable Ties", "Reusable velcro, 50 pack.", 700, 300},
		{"USB-A to USB-C Adapter", "Aluminium, pack of two.", 800, 4},
		{"Extension Cable", "USB 3.0, 2 m, active.", 1400, 60},
	},
	"audio": {
		{"Studio Headphones", "Closed back, 40 mm drivers.", 12900, 18},
		{"USB Microphone", "Cardioid condenser, 24-bit.", 9900, 22},
		{"Desk Speakers", "Bookshelf pair, 2 x 30 W.", 14900, 10},
		{"Wireless Earbuds", "Active noise cancelling, 8 h.", 11900, 40},
		{"Headphone Stand", "Walnut and steel.", 3900, 35},
		{"DAC Amplifier", "32-bit, balanced output.", 19900, 6},
		{"Boom Arm", "Spring-loaded microphone arm.", 4500, 28},
		{"Pop Filter", "Dual-layer mesh, gooseneck clamp.", 1500, 55},
	},
	"displays": {
		{"27-inch Monitor", "1440p IPS, 165 Hz.", 32900, 14},
		{"Portable Monitor", "15.6-inch 1080p, USB-C powered.", 19900, 11},
		{"Monitor Arm", "Gas spring, up to 9 kg.", 11900, 24},
		{"Monitor Light Bar", "Asymmetric, no screen glare.", 5900, 33},
		{"Webcam", "1080p at 60 fps, privacy shutter.", 7900, 27},
		{"Screen Cleaner Kit", "Spray and microfibre cloth.", 1100, 120},
		{"Laptop Stand", "Aluminium, six heights.", 4900, 40},
		{"Dual Monitor Mount", "Desk clamp, two arms.", 15900, 2},
	},
	"desk": {
		{"Standing Desk Frame", "Dual motor, memory presets.", 39900, 7},
		{"Desk Mat", "Merino wool felt, 90 x 40 cm.", 5900, 38},
		{"Cable Tray", "Under-desk steel mesh.", 2900, 45},
		{"Desk Lamp", "Dimmable LED, colour temperature control.", 6900, 26},
		{"Footrest", "Adjustable tilt, rocking base.", 4400, 19},
		{"Headphone Hook", "Clamps to the desk edge.", 1900, 64},
		{"Document Tray", "Stackable, recycled plastic.", 1700, 52},
		{"Plant Pot", "Self-watering ceramic, small.", 2300, 31},
		{"Desk Organizer", "Bamboo, five compartments.", 2900, 0},
		{"Power Strip", "6 outlets, 2 USB-C, surge protection.", 3900, 48},
	},
}

// SeedCatalog adds the demo catalog when the catalog is empty, so a restart
// keeps what was changed since. It returns how many products it created.
func SeedCatalog(ctx context.Context, st *store.Store) (int, error) {
	existing, _, err := st.ListProducts(ctx, store.ProductFilter{}, store.Page{Limit: 1})
	if err != nil {
		return 0, err
	}
	if len(existing) > 0 {
		return 0, nil
	}
	n := 0
	for _, category := range []string{"keyboards", "mice", "cables", "audio", "displays", "desk"} {
		for i, p := range demoCatalog[category] {
			cat := category
			_, err := st.CreateProduct(ctx, store.NewProduct{
				SKU:               fmt.Sprintf("%s-%03d", strings.ToUpper(category[:3]), i+1),
				Name:              p.name,
				Description:       p.desc,
				PriceCents:        p.price,
				Currency:          "usd",
				Category:          &cat,
				Tags:              []string{category},
				Stock:             p.stock,
				LowStockThreshold: 10,
				IsActive:          true,
				IsFeatured:        i == 0,
			}, "")
			if err != nil {
				return n, fmt.Errorf("seed %s: %w", p.name, err)
			}
			n++
		}
	}
	return n, nil
}
