/* What the Adam and the RMSprop CPU references share, checked on both over ref_checks.c's
 * description of each (their own tests: test_adam_ref.c, test_rmsprop_ref.c):
 *   every case of PyTorch's golden vectors within 1e-5;
 *   the golden file still covers every variant and shape (guards against a regenerated file that
 *   lost coverage);
 *   maximize with gradient g is bit-identical to minimizing with -g (each of three configs);
 *   lr 0 leaves the parameter bit-identical while the moments still update;
 *   n == 0 succeeds and writes nothing;
 *   a NULL buffer (n 37 and 0) or config, and each hyper-parameter set to each bad value, give
 *   FOPT_ERROR_INVALID_VALUE with a message and leave every buffer byte-identical. */
#include <criterion/criterion.h>

#include "ref_checks.h"

static void on_both(void (*check)(const ref_optimizer *o))
{
    check(&ref_adam);
    check(&ref_rmsprop);
}

Test(ref_common, matches_pytorch_on_every_golden_case) { on_both(ref_check_golden_cases); }
Test(ref_common, golden_file_covers_every_variant) { on_both(ref_check_golden_coverage); }
Test(ref_common, maximize_equals_negated_gradient) { on_both(ref_check_maximize_negates_grad); }
Test(ref_common, zero_lr_leaves_param_unchanged) { on_both(ref_check_zero_lr_keeps_param); }
Test(ref_common, empty_call_succeeds_and_touches_nothing) { on_both(ref_check_empty_call); }
Test(ref_common, rejects_null_buffers) { on_both(ref_check_null_buffers); }
Test(ref_common, rejects_null_config) { on_both(ref_check_null_config); }
Test(ref_common, rejects_bad_hyper_parameters) { on_both(ref_check_bad_hyper_parameters); }
