package testutil

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"gocloud.dev/secrets"
	"gocloud.dev/secrets/localsecrets"
	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
)

// Keeper returns a local key-wrapping keeper with a fresh random key,
// closed after the test: what a service test's vault wraps data keys with.
func Keeper(t testing.TB) *secrets.Keeper {
	t.Helper()
	key, err := localsecrets.NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	k := localsecrets.NewKeeper(key)
	t.Cleanup(func() { _ = k.Close() })
	return k
}

// Insert creates each row, failing the test on the first error. Service
// tests seed with it the rows that sit below the service under test.
func Insert(t testing.TB, db *gorm.DB, rows ...any) {
	t.Helper()
	for _, r := range rows {
		if err := db.Create(r).Error; err != nil {
			t.Fatalf("seed %T: %v", r, err)
		}
	}
}

// SeedApp inserts an organization and an app named "app" in it, created at
// now, and returns the app (OrganizationID names the organization). It
// writes the two rows only: no operator, key or keyring, which tenancy's
// bootstrap would add.
func SeedApp(t testing.TB, db *gorm.DB, now time.Time) models.App {
	t.Helper()
	o := models.Organization{ID: uuid.NewString(), Name: "org-" + uuid.NewString(), CreatedAt: now, UpdatedAt: now}
	a := models.App{ID: uuid.NewString(), OrganizationID: o.ID, Name: "app", DisplayName: "app", CreatedAt: now, UpdatedAt: now}
	Insert(t, db, &o, &a)
	return a
}

// SeedAgent inserts an active agent of app, created at now, and returns its
// id. It mints no key.
func SeedAgent(t testing.TB, db *gorm.DB, now time.Time, appID, name string) string {
	t.Helper()
	a := models.Agent{ID: uuid.NewString(), AppID: appID, Name: name, Status: models.AgentActive, CreatedAt: now, UpdatedAt: now}
	Insert(t, db, &a)
	return a.ID
}
