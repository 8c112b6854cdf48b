package server_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/testutil"
	"github.com/latchkey/latchkey/testutil/testserver"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.DropTemplate()
	os.Exit(code)
}

// Housekeeping removes Connect sessions a day past their expiry (and their
// OAuth flows with them) and keeps everything younger.
func TestHousekeepRemovesOnlyLongExpiredConnectState(t *testing.T) {
	for _, d := range testutil.Dialects(t) {
		t.Run(d, func(t *testing.T) {
			core := testserver.NewCore(t, d, testserver.Options{})
			app, _ := testserver.NewSeed(t, core).App("")
			now := time.Now().UTC()
			rows := []models.ConnectSession{
				{ID: "8c7e5f2a-0000-4000-8000-000000000001", AppID: app.ID, TokenHash: "h1", PrincipalKind: "system",
					Status: models.ConnectExpired, ExpiresAt: now.Add(-48 * time.Hour), CreatedAt: now, UpdatedAt: now},
				{ID: "8c7e5f2a-0000-4000-8000-000000000002", AppID: app.ID, TokenHash: "h2", PrincipalKind: "system",
					Status: models.ConnectExpired, ExpiresAt: now.Add(-time.Hour), CreatedAt: now, UpdatedAt: now},
				{ID: "8c7e5f2a-0000-4000-8000-000000000003", AppID: app.ID, TokenHash: "h3", PrincipalKind: "system",
					Status: models.ConnectPending, ExpiresAt: now.Add(time.Minute), CreatedAt: now, UpdatedAt: now},
			}
			if err := core.DB.Gorm.Create(&rows).Error; err != nil {
				t.Fatal(err)
			}
			if err := core.Housekeep(context.Background()); err != nil {
				t.Fatal(err)
			}
			var left []string
			core.DB.Gorm.Model(&models.ConnectSession{}).Order("id").Pluck("token_hash", &left)
			if len(left) != 2 || left[0] != "h2" || left[1] != "h3" {
				t.Fatalf("sessions left: %v, want h2 and h3", left)
			}
		})
	}
}
