/*
 * test_dist_demo.c - the cluster demonstration (examples/dist/README.md) as
 * a test: build/<flavour>/cluster_demo runs three krill nodes and a BEAM,
 * SIGKILLs a worker node and then the coordinator's, and says PASS only
 * when every job was counted once and correct after the standby took over.
 * Its nodes are this flavour's build/<flavour>/cluster, so the run is
 * checked under ASan, TSan and qemu as well.
 */
#include "dist_util.h"

TestSuite(dist_demo, .timeout = 150);

Test(dist_demo, a_cluster_loses_a_worker_node_and_its_coordinator_and_no_job)
{
	char *argv[] = {"./cluster_demo", "--quick", "--deadline", "120", NULL};
	dist_proc d;
	dist_start(&d, argv);
	bool pass = dist_expect(&d, "cluster demo: PASS", 130000);
	dist_kill(&d);
	cr_assert(pass, "the demonstration did not pass; it printed:\n%s", d.text);
}
