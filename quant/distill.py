"""Knowledge distillation: logit KL from a frozen teacher (Hinton et al., 2015)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["kd_loss"]


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
            weight: float, temperature: float) -> torch.Tensor:
    """(1-weight)*CE(labels) + weight*T^2*KL(teacher_T || student_T)."""
    ce = F.cross_entropy(student_logits, labels)
    if weight == 0.0:
        return ce
    kl = F.kl_div(F.log_softmax(student_logits / temperature, dim=-1),
                  F.log_softmax(teacher_logits / temperature, dim=-1),
                  reduction="batchmean", log_target=True)
    return (1.0 - weight) * ce + weight * temperature**2 * kl
