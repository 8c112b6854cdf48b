package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/grants"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func entry(grantID string, expires *time.Time) authorized {
	return authorized{
		resolved:   grants.Resolved{Grant: models.Grant{ID: grantID}},
		credential: grants.Credential{AccessToken: "tok-" + grantID, ExpiresAt: expires},
	}
}

func TestCacheServesWithinTTLOnly(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := NewCache(2*time.Second, clk.now)
	c.put("k", c.generation(), entry("g1", nil))
	if a, ok := c.get("k"); !ok || a.resolved.Grant.ID != "g1" {
		t.Fatal("fresh entry not served")
	}
	clk.t = clk.t.Add(2 * time.Second)
	if _, ok := c.get("k"); ok {
		t.Fatal("entry served at its TTL")
	}
}

func TestCacheInvalidateDropsEverythingAndRefusesStaleResults(t *testing.T) {
	clk := &fakeClock{t: time.Now()}
	c := NewCache(time.Minute, clk.now)
	c.put("a", c.generation(), entry("g1", nil))
	// A resolution that started before a change must not be stored after it.
	started := c.generation()
	c.Invalidate()
	c.put("b", started, entry("g2", nil))
	if _, ok := c.get("a"); ok {
		t.Fatal("entry survived Invalidate")
	}
	if _, ok := c.get("b"); ok {
		t.Fatal("a result computed across Invalidate was cached")
	}
	c.put("b", c.generation(), entry("g2", nil))
	if _, ok := c.get("b"); !ok {
		t.Fatal("a result computed after Invalidate was not cached")
	}
}

func TestCacheNeverOutlivesTheCredential(t *testing.T) {
	clk := &fakeClock{t: time.Now()}
	c := NewCache(time.Minute, clk.now)
	soon := clk.t.Add(30 * time.Second)
	c.put("k", c.generation(), entry("g1", &soon))
	if _, ok := c.get("k"); ok {
		t.Fatal("a credential expiring within the TTL was cached")
	}
	later := clk.t.Add(time.Hour)
	c.put("k", c.generation(), entry("g1", &later))
	if _, ok := c.get("k"); !ok {
		t.Fatal("a long-lived credential was not cached")
	}
}

func TestCacheDisabledAndNil(t *testing.T) {
	off := NewCache(0, nil)
	off.put("k", off.generation(), entry("g1", nil))
	if _, ok := off.get("k"); ok {
		t.Fatal("a zero-TTL cache served an entry")
	}
	var none *Cache
	none.put("k", none.generation(), entry("g1", nil))
	none.Invalidate()
	if _, ok := none.get("k"); ok {
		t.Fatal("a nil cache served an entry")
	}
}

func TestCacheIsBounded(t *testing.T) {
	clk := &fakeClock{t: time.Now()}
	c := NewCache(time.Minute, clk.now)
	for i := 0; i < maxCacheEntries+10; i++ {
		c.put(string(rune('a'+i%26))+time.Duration(i).String(), c.generation(), entry("g", nil))
	}
	if n := len(c.entries); n > maxCacheEntries {
		t.Fatalf("%d entries, bound is %d", n, maxCacheEntries)
	}
}

// Everything that decides which grant a call reaches is in the key: two
// callers, tokens or selections never share an entry.
func TestCacheKeySeparatesCallers(t *testing.T) {
	base := cacheKey("app", "", false, "", Selection{GrantID: "g"})
	for name, k := range map[string]string{
		"other app":     cacheKey("app2", "", false, "", Selection{GrantID: "g"}),
		"as an agent":   cacheKey("app", "agent", false, "", Selection{GrantID: "g"}),
		"impersonating": cacheKey("app", "agent", true, "", Selection{GrantID: "g"}),
		"with a user":   cacheKey("app", "", false, "jwt", Selection{GrantID: "g"}),
		"other grant":   cacheKey("app", "", false, "", Selection{GrantID: "h"}),
		"by provider":   cacheKey("app", "", false, "", Selection{Provider: "g"}),
		"other account": cacheKey("app", "", false, "", Selection{Provider: "g", Account: "x"}),
	} {
		if k == base {
			t.Errorf("%s shares the cache key", name)
		}
	}
	if k := cacheKey("app", "", false, "secret-jwt", Selection{}); strings.Contains(k, "secret-jwt") {
		t.Fatal("the user token itself is in the cache key")
	}
}
