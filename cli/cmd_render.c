/* cli/cmd_render.c: `gitops render <env>`: prints the objects an environment would run at a
 * revision, as YAML or JSON. Argument parsing only; the work is in manifests/. */
#include "cmd.h"
#include "../manifests/manifests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cmd_render_help(void)
{
	puts("usage: gitops render <env> [--app A] [--revision REV] [--repo URL|PATH] [--json]\n"
	     "\n"
	     "Renders the objects environment <env> would run: reads gitops.yaml from the main branch,\n"
	     "renders each app (plain YAML, kustomize, helm) at the revision, fills in default\n"
	     "namespaces and prints the objects as YAML documents (or one JSON List with --json).\n"
	     "\n"
	     "Options:\n"
	     "  --app A          render only app A of the environment\n"
	     "  --revision REV   branch, tag or (short) commit SHA; default: the branch the environment\n"
	     "                   tracks (environments promoted `from` another render the main branch)\n"
	     "  --repo URL|PATH  the manifests repository: a path, file://, https:// or ssh URL;\n"
	     "                   default: the git repository of the working directory\n"
	     "  --json           print JSON instead of YAML\n"
	     "\n"
	     "The repository is mirrored under $GITOPS_DATA_DIR (default ~/.cache/gitops), which also\n"
	     "holds the render cache. helm and kustomize come from PATH or GITOPS_HELM / GITOPS_KUSTOMIZE\n"
	     "and run without network, each within GITOPS_RENDER_TIMEOUT (default 60s).\n"
	     "\n"
	     "Exit codes: 0 rendered; 2 usage; 3 bad input (config, manifests, unknown environment or\n"
	     "app, renderer failure); 5 git error (unknown revision, unreachable repository, auth);\n"
	     "10 unexpected local failure.");
}

/* Exit code for a failure while reading git (fetch, refs, gitops.yaml lookup). */
static int git_exit(int err)
{
	if (err == GITOPS_EPARSE || err == GITOPS_EINVALID)
		return EXIT_INPUT;
	return EXIT_GIT;
}

/* Exit code for a failure while rendering. */
static int render_exit(int err)
{
	if (err == GITOPS_EIO)
		return EXIT_INTERNAL;
	return EXIT_INPUT;
}

int cmd_render(int argc, char **argv)
{
	const char *env_name = NULL, *app = NULL, *rev = NULL, *repo_arg = NULL;
	bool json = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--json")) {
			json = true;
		} else if (!strcmp(a, "--app") || !strcmp(a, "--revision") || !strcmp(a, "--repo")) {
			if (i + 1 >= argc)
				return cli_fail(EXIT_USAGE, "%s needs a value; see 'gitops render --help'", a);
			const char **dst = !strcmp(a, "--app") ? &app : !strcmp(a, "--revision") ? &rev : &repo_arg;
			*dst = argv[++i];
		} else if (!strncmp(a, "--app=", 6)) {
			app = a + 6;
		} else if (!strncmp(a, "--revision=", 11)) {
			rev = a + 11;
		} else if (!strncmp(a, "--repo=", 7)) {
			repo_arg = a + 7;
		} else if (a[0] == '-') {
			return cli_fail(EXIT_USAGE, "unknown option %s; see 'gitops render --help'", a);
		} else if (!env_name) {
			env_name = a;
		} else {
			return cli_fail(EXIT_USAGE, "unexpected argument %s; see 'gitops render --help'", a);
		}
	}
	if (!env_name)
		return cli_fail(EXIT_USAGE, "missing <env>; usage: gitops render <env> [--app A] [--revision REV] [--json]");

	int code = EXIT_OK, rc;
	char *discovered = NULL, main_sha[41], sha[41];
	mf_repo *repo = NULL;
	struct mf_config *cfg = NULL;
	mf_renderer *r = NULL;
	mf_objects *set = NULL;
	gitops_buf text = GITOPS_BUF_INIT, out = GITOPS_BUF_INIT;

	if (!repo_arg) {
		if ((rc = mf_repo_discover(&discovered, "."))) {
			code = cli_fail(EXIT_GIT, "%s", gitops_error_last());
			goto done;
		}
		repo_arg = discovered;
	}
	if ((rc = mf_repo_open(&repo, repo_arg, NULL))) {
		code = cli_fail(EXIT_GIT, "%s", gitops_error_last());
		goto done;
	}
	if ((rc = mf_repo_fetch(repo))) {
		if (!mf_repo_has_refs(repo)) {
			code = cli_fail(EXIT_GIT, "%s", gitops_error_last());
			goto done;
		}
		/* unreachable now, but a mirror from an earlier fetch exists: render from it */
		fprintf(stderr, "gitops: warning: %s\n", gitops_error_last());
	}

	/* the pipeline config lives on the main branch: HEAD of the mirror, then its `branch` */
	if ((rc = mf_repo_resolve(main_sha, repo, "HEAD")) || (rc = mf_repo_read(&text, repo, main_sha, "gitops.yaml"))) {
		code = cli_fail(git_exit(rc), "%s", gitops_error_last());
		goto done;
	}
	if ((rc = mf_config_parse(&cfg, gitops_buf_cstr(&text), text.len, "gitops.yaml"))) {
		code = cli_fail(EXIT_INPUT, "%s", gitops_error_last());
		goto done;
	}
	if (strcmp(cfg->branch, "HEAD")) {
		char branch_sha[41];
		if (mf_repo_resolve(branch_sha, repo, cfg->branch) == 0 && strcmp(branch_sha, main_sha)) {
			/* HEAD is not the configured main branch: re-read the config from there */
			struct mf_config *c2 = NULL;
			gitops_buf_clear(&text);
			if ((rc = mf_repo_read(&text, repo, branch_sha, "gitops.yaml")) ||
			    (rc = mf_config_parse(&c2, gitops_buf_cstr(&text), text.len, "gitops.yaml"))) {
				code = cli_fail(git_exit(rc), "%s", gitops_error_last());
				goto done;
			}
			mf_config_free(cfg);
			cfg = c2;
			memcpy(main_sha, branch_sha, sizeof(main_sha));
		}
		gitops_error_clear();
	}
	const struct mf_environment *env = mf_config_env(cfg, env_name);
	if (!env) {
		gitops_buf names = GITOPS_BUF_INIT;
		for (size_t i = 0; i < cfg->n_envs; i++)
			gitops_buf_printf(&names, "%s%s", i ? ", " : "", cfg->envs[i].name);
		code = cli_fail(EXIT_INPUT, "gitops.yaml: no environment \"%s\" (known: %s)", env_name, gitops_buf_cstr(&names));
		gitops_buf_free(&names);
		goto done;
	}
	if (!rev)
		rev = env->track ? env->track : cfg->branch;
	if ((rc = mf_repo_resolve(sha, repo, rev))) {
		code = cli_fail(EXIT_GIT, "%s", gitops_error_last());
		goto done;
	}
	mf_renderer_new(&r, NULL);
	if ((rc = mf_render_env(&set, r, repo, sha, env, app))) {
		code = cli_fail(render_exit(rc), "%s", gitops_error_last());
		goto done;
	}
	rc = json ? mf_objects_to_json(&out, set) : mf_objects_to_yaml(&out, set);
	if (rc) {
		code = cli_fail(EXIT_INTERNAL, "%s", gitops_error_last());
		goto done;
	}
	fwrite(out.ptr ? out.ptr : "", 1, out.len, stdout);
	if (fflush(stdout))
		code = cli_fail(EXIT_INTERNAL, "writing the output failed");
done:
	gitops_buf_free(&out);
	gitops_buf_free(&text);
	mf_objects_free(set);
	mf_renderer_free(r);
	mf_config_free(cfg);
	mf_repo_free(repo);
	free(discovered);
	return code;
}
