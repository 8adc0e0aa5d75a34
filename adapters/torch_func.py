"""PyTorch's functional APIs over nn.BatchNorm: torch.func.functional_call and
torch.func.replace_all_batch_norm_modules_.

Variants (preset "pytorch": the module underneath is torch.nn.BatchNorm{1,2,3}d, built as
adapters/pytorch.py ``NnModule`` builds it):

  torch.func.functional_call   the module called with the caller's own parameters and
                               buffers, ``functional_call(m, (params, buffers), (x,))``
                               (https://pytorch.org/docs/stable/generated/torch.func.functional_call.html).
                               The module's own tensors are never used: the caller's dicts
                               hold the running statistics, which BatchNorm's forward updates
                               IN PLACE in the supplied tensors (torch/_functorch/
                               functional_call.py docstring: "If the module performs in-place
                               operations on parameters/buffers, these will be reflected in
                               the parameter_and_buffer_dicts input"), num_batches_tracked
                               included, so momentum=None (cumulative) works. Gradients with
                               torch.func.grad_and_value of sum(y * dy), the buffers passed as
                               an explicit argument (not differentiated): a closure over them
                               raises "attempted to call in-place operation ... that would
                               mutate a captured Tensor" in training mode (measured, torch
                               2.13.0, conformance/findings/probes/alt_apis/s2_torch.py and
                               s2c_torch_grad.py, outputs in the .out files). Freezing in the
                               functional style: the parameters are not differentiated (the
                               module's mode is untouched, as torch.nn's requires_grad_(False)).
  torch.func.replaced          torch.func.replace_all_batch_norm_modules_(module): the
                               module built with running statistics, then stripped of them in
                               place (torch/_functorch/batch_norm_replacement.py:
                               running_mean = running_var = num_batches_tracked = None,
                               track_running_stats = False), the preparation torch.func.vmap
                               needs. Every call then normalises with the batch's statistics,
                               eval() included (torch/nn/modules/batchnorm.py: bn_training is
                               True when both buffers are None). Only the cases without running
                               statistics (notrs) exist for it; tracked cases are skipped.
"""
from __future__ import annotations

import dataclasses

from .protocol import Problem
from .pytorch import NnModule, _torch
from .scenario import Step


class FunctionalCall(NnModule):
    name = "torch.func.functional_call"

    def create(self, pb: Problem, device: str):
        layer = super().create(pb, device)
        # the caller's tensors, copies of what the module initialised (weight/bias set to the case's)
        layer.params = {k: v.detach().clone() for k, v in layer.m.named_parameters()}
        layer.buffers = {k: v.detach().clone() for k, v in layer.m.named_buffers()}
        layer.frozen = False
        return layer

    def load_stats(self, layer, mean, var):
        torch = _torch()
        with torch.no_grad():
            layer.buffers["running_mean"].copy_(torch.tensor(mean))
            layer.buffers["running_var"].copy_(torch.tensor(var))
        return layer

    def freeze(self, layer):
        layer.frozen = True
        return layer

    def forward(self, layer, x, dy, training):
        torch, m, pb = _torch(), layer.m, layer.pb
        from torch.func import functional_call, grad_and_value
        m.train(training)
        xt = self.tensor(x, pb, layer.device)
        if dy is None:
            with torch.no_grad():
                return Step(functional_call(m, (layer.params, layer.buffers), (xt,))), layer
        dyt = self.tensor(dy, pb, layer.device)

        def loss(p, x, b):
            y = functional_call(m, (p, b), (x,))
            return (y * dyt).sum(), y

        if layer.frozen or not layer.params:
            dx, (_, y) = grad_and_value(lambda x, b: loss(layer.params, x, b), has_aux=True)(xt, layer.buffers)
            return Step(y.detach(), dx), layer
        (dp, dx), (_, y) = grad_and_value(loss, argnums=(0, 1), has_aux=True)(layer.params, xt, layer.buffers)
        return Step(y.detach(), dx, dp["weight"], dp["bias"]), layer

    def stats(self, layer):
        return layer.buffers["running_mean"].clone(), layer.buffers["running_var"].clone()


class Replaced(NnModule):
    name = "torch.func.replaced"

    def supports(self, pb: Problem, device: str) -> str | None:
        if pb.track_running_stats:
            return ("torch.func.replace_all_batch_norm_modules_ removes the running statistics (torch/_functorch/"
                    "batch_norm_replacement.py: running_mean = running_var = num_batches_tracked = None, "
                    "track_running_stats = False): every call, eval() included, normalises with the batch's "
                    "statistics, so only the cases without running statistics (notrs) apply")
        return super().supports(pb, device)

    def module(self, pb: Problem, device: str):
        from torch.func import replace_all_batch_norm_modules_
        # as a user has it: a module with running statistics (the default), then replaced
        m = super().module(dataclasses.replace(pb, track_running_stats=True), device)
        return replace_all_batch_norm_modules_(m)
