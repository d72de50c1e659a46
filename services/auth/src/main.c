/* cairn-auth: identity, tenancy, tokens and audit.
 * Wiring only: the service's description for the common runtime (libs/common/svc.h). */
#include <string.h>

#include "common/svc.h"

#include "auth.h"

int main(int argc, char **argv)
{
	struct auth_app app = { 0 };
	const struct svc_def def = {
		.name = "auth",
		.schema = AUTH_SCHEMA,
		.default_http_port = 8101,
		.outbox = true,
		.own_authn = true,
		.cfg_keys = auth_cfg_keys,
		.cfg_nkeys = auth_cfg_nkeys,
		.cfg = &app.cfg,
		.app = &app,
		.setup = auth_setup,
		.teardown = auth_teardown,
		.tick = auth_tick,
	};

	if (argc == 2 && strcmp(argv[1], "bootstrap") == 0)
		return auth_bootstrap_main(argc, argv);
	if (argc == 2 && strcmp(argv[1], "rotate-key") == 0)
		return auth_rotate_key_main();
	return svc_main(&def, argc, argv);
}
