"""The papers' loss landscapes, models, their math and data (layer 5 of the architecture)."""

from adabias.problems.bilinear import (BILINEAR_START, BILINEAR_X, BILINEAR_Y, bilinear_landscape,
                                       bilinear_loss, bilinear_min_one_norm_point,
                                       bilinear_minimum_set, bilinear_one_norm_per_residual,
                                       bilinear_residual, bilinear_sign_flow_limit)
from adabias.problems.classifiers import (accuracy, classifier_loss, cnn_apply, cross_entropy_loss,
                                          init_cnn, init_mlp, make_classifier, mlp_apply)
from adabias.problems.data import (CIFAR_SPECS, MANIFEST_NAME, CifarSpec, DataIntegrityError,
                                   DataUnavailableError, default_data_root, load_cifar, load_digits)
from adabias.problems.diagonal_net import (diagonal_net_balanced_point,
                                           diagonal_net_diag_power_trace,
                                           diagonal_net_hessian_diag_on_manifold,
                                           diagonal_net_leaf_root_trace, diagonal_net_loss,
                                           diagonal_net_manifold_points, diagonal_net_pair_blocks,
                                           diagonal_net_pair_root_trace, diagonal_net_predict,
                                           diagonal_net_test_loss, diagonal_net_weights,
                                           effective_support, init_diagonal_net,
                                           sparse_regression_data)
from adabias.problems.matrix_sensing import (deep_matrix_product, deep_matrix_sensing_loss,
                                             init_deep_matrix_factorization,
                                             init_matrix_sensing, matrix_completion_data,
                                             matrix_relative_error, matrix_sensing_data,
                                             matrix_sensing_loss, matrix_sensing_predict,
                                             matrix_sensing_product, matrix_sensing_test_error)
from adabias.problems.noise import gaussian_label_noise, label_noise
from adabias.problems.tanh_net import (init_tanh_net, tanh_net_by_kind, tanh_net_by_layer,
                                       tanh_net_loss, tanh_net_predict, tanh_net_sine_data,
                                       tanh_net_teacher_data)
from adabias.problems.sinh_regression import (sinh_regression_data,
                                              sinh_regression_hessian_diag_on_manifold,
                                              sinh_regression_loss, sinh_regression_measure,
                                              sinh_regression_min_measure_point,
                                              sinh_regression_min_trace_point,
                                              sinh_regression_trace)

__all__ = ["DataIntegrityError", "DataUnavailableError", "MANIFEST_NAME", "BILINEAR_START", "BILINEAR_X", "BILINEAR_Y", "CIFAR_SPECS", "CifarSpec", "accuracy",
           "bilinear_landscape", "bilinear_loss", "bilinear_min_one_norm_point",
           "bilinear_minimum_set", "bilinear_one_norm_per_residual", "bilinear_residual",
           "bilinear_sign_flow_limit", "classifier_loss", "cnn_apply", "cross_entropy_loss",
           "default_data_root", "diagonal_net_balanced_point", "diagonal_net_diag_power_trace",
           "diagonal_net_hessian_diag_on_manifold", "diagonal_net_leaf_root_trace",
           "diagonal_net_loss", "diagonal_net_manifold_points", "diagonal_net_pair_blocks",
           "diagonal_net_pair_root_trace", "diagonal_net_predict", "diagonal_net_test_loss",
           "diagonal_net_weights", "effective_support", "init_cnn", "init_diagonal_net",
           "init_matrix_sensing", "init_mlp", "label_noise", "load_cifar", "load_digits",
           "make_classifier", "matrix_completion_data", "matrix_relative_error",
           "matrix_sensing_data", "matrix_sensing_loss", "matrix_sensing_predict",
           "matrix_sensing_product", "matrix_sensing_test_error", "mlp_apply",
           "sinh_regression_data", "sinh_regression_hessian_diag_on_manifold",
           "sinh_regression_loss", "sinh_regression_measure", "sinh_regression_min_measure_point",
           "sparse_regression_data", "init_tanh_net", "tanh_net_loss", "tanh_net_predict",
           "tanh_net_sine_data", "tanh_net_teacher_data", "tanh_net_by_kind", "tanh_net_by_layer",
           "deep_matrix_product", "deep_matrix_sensing_loss", "init_deep_matrix_factorization",
           "gaussian_label_noise", "sinh_regression_min_trace_point", "sinh_regression_trace"]
