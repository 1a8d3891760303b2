# Operating the container stack (docker/compose.yaml). Administration runs inside the running
# gateway container, so the tools always match the gateway's version.
COMPOSE ?= docker compose -f docker/compose.yaml
DEV ?= -f docker/compose.dev.yaml
USER ?= dev
ROLES ?= developer
TTL ?= 1h

.PHONY: image up up-dev down logs token db-migrate check audit config

image:            ## build the image
	docker build -f docker/Dockerfile -t mcp-gateway:latest .

up:               ## start the stack (docker/.env must exist: see docker/.env.example)
	$(COMPOSE) up -d

up-dev:           ## start it with the development override (ports on loopback, login on :8010)
	$(COMPOSE) $(DEV) up -d

down:             ## stop it (volumes stay)
	$(COMPOSE) down

logs:             ## follow the gateway's log
	$(COMPOSE) logs -f gateway

token:            ## mint a test token: make token USER=alice ROLES=developer
	$(COMPOSE) exec gateway mcp-gateway token --user $(USER) --roles $(ROLES) --ttl $(TTL)

db-migrate:       ## apply the audit database migrations
	$(COMPOSE) exec gateway mcp-gateway migrate

check:            ## validate the running container's configuration
	$(COMPOSE) exec gateway mcp-gateway check

audit:            ## the last audit rows
	$(COMPOSE) exec gateway mcp-gateway audit show --limit 20

config:           ## print the stack as Compose resolves it
	$(COMPOSE) config
