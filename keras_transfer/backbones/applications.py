"""Block maps of every `keras.applications` family, as data.

Each family lists where its blocks end (`BlockEnd` patterns over layer names). Blocks follow the
architecture's own stages (resolution changes), so block ends double as feature-pyramid taps.
"""

from __future__ import annotations

import keras

from keras_transfer.backbones.spec import BackboneSpec, BlockEnd


def _ends(*patterns: str | BlockEnd) -> tuple[tuple[str, BlockEnd], ...]:
    """Names blocks block1..blockN after the given end patterns."""
    ends = [p if isinstance(p, BlockEnd) else BlockEnd(p) for p in patterns]
    return tuple((f"block{i}", end) for i, end in enumerate(ends, start=1))


_RESNET = dict(stem_end=BlockEnd(r"^pool1_"), blocks=_ends(*(rf"^conv{i}_" for i in range(2, 6))))
_EFFICIENTNET = dict(
    stem_end=BlockEnd(r"^stem_"), blocks=_ends(*(rf"^block{i}[a-z]_" for i in range(1, 8)))
)
_EFFICIENTNET_V2 = dict(
    stem_end=BlockEnd(r"^stem_"),
    blocks=_ends(
        *(rf"^block{i}[a-z]_" for i in range(1, 7)), BlockEnd(r"^block7[a-z]_", optional=True)
    ),
)
_INCEPTION_STEM = BlockEnd("class:MaxPooling2D", nth=1)  # the stem's convs are auto-named
_NASNET = dict(
    stem_end=BlockEnd(r"_stem_2$"),
    blocks=_ends(
        BlockEnd(r"^reduction_concat_reduce_", nth=0),
        BlockEnd(r"^reduction_concat_reduce_", nth=1),
        BlockEnd(r"^normal_concat_"),
    ),
)

# family -> (preprocessing, layout, min_size)
FAMILIES: dict[str, tuple[str, dict, int]] = {
    "vgg": ("caffe", dict(blocks=_ends(*(rf"^block{i}_" for i in range(1, 6)))), 32),
    "resnet": ("caffe", _RESNET, 32),
    "resnet_v2": ("tf", _RESNET, 32),
    "mobilenet": (
        "tf",
        dict(
            stem_end=BlockEnd(r"^conv_pw_1_"),
            blocks=_ends(r"^conv_pw_3_", r"^conv_pw_5_", r"^conv_pw_11_", r"^conv_pw_13_"),
        ),
        32,
    ),
    "mobilenet_v2": (
        "tf",
        dict(
            stem_end=BlockEnd(r"^expanded_conv_"),
            blocks=_ends(r"^block_2_", r"^block_5_", r"^block_12_", r"^block_16_"),
        ),
        32,
    ),
    "mobilenet_v3_small": (
        "none",
        dict(
            stem_end=BlockEnd(r"^conv_bn$"),
            blocks=_ends(
                r"^expanded_conv_(?!\d)",
                r"^expanded_conv_2_",
                r"^expanded_conv_7_",
                r"^expanded_conv_10_",
            ),
        ),
        32,
    ),
    "mobilenet_v3_large": (
        "none",
        dict(
            stem_end=BlockEnd(r"^expanded_conv_(?!\d)"),
            blocks=_ends(
                r"^expanded_conv_2_",
                r"^expanded_conv_5_",
                r"^expanded_conv_11_",
                r"^expanded_conv_14_",
            ),
        ),
        32,
    ),
    "inception_v3": (
        "tf",
        dict(stem_end=_INCEPTION_STEM, blocks=_ends(*(rf"^mixed{i}$" for i in range(11)))),
        75,
    ),
    "inception_resnet_v2": (
        "tf",
        dict(stem_end=_INCEPTION_STEM, blocks=_ends(r"^block35_", r"^block17_", r"^block8_")),
        75,
    ),
    "xception": (
        "tf",
        # Keras' own block1 is the stem and block14 the closing convs ("top").
        dict(stem_end=BlockEnd(r"^block1_"), blocks=_ends(*(rf"^block{i}_" for i in range(2, 14)))),
        71,
    ),
    "densenet": (
        "torch",
        dict(stem_end=BlockEnd(r"^pool1$"), blocks=_ends(*(rf"^conv{i}_" for i in range(2, 6)))),
        32,
    ),
    "efficientnet": ("none", _EFFICIENTNET, 32),
    "efficientnet_v2": ("none", _EFFICIENTNET_V2, 32),
    "convnext": (
        "none",
        dict(stem_end=BlockEnd(r"_stem$"), blocks=_ends(*(rf"_stage_{i}_" for i in range(4)))),
        32,
    ),
    "nasnet": ("tf", _NASNET, 32),
}

# name -> (keras.applications constructor, family, default input size)
MODELS: dict[str, tuple[str, str, int]] = {
    "vgg16": ("VGG16", "vgg", 224),
    "vgg19": ("VGG19", "vgg", 224),
    "resnet50": ("ResNet50", "resnet", 224),
    "resnet101": ("ResNet101", "resnet", 224),
    "resnet152": ("ResNet152", "resnet", 224),
    "resnet50_v2": ("ResNet50V2", "resnet_v2", 224),
    "resnet101_v2": ("ResNet101V2", "resnet_v2", 224),
    "resnet152_v2": ("ResNet152V2", "resnet_v2", 224),
    "mobilenet": ("MobileNet", "mobilenet", 224),
    "mobilenet_v2": ("MobileNetV2", "mobilenet_v2", 224),
    "mobilenet_v3_small": ("MobileNetV3Small", "mobilenet_v3_small", 224),
    "mobilenet_v3_large": ("MobileNetV3Large", "mobilenet_v3_large", 224),
    "inception_v3": ("InceptionV3", "inception_v3", 299),
    "inception_resnet_v2": ("InceptionResNetV2", "inception_resnet_v2", 299),
    "xception": ("Xception", "xception", 299),
    "densenet121": ("DenseNet121", "densenet", 224),
    "densenet169": ("DenseNet169", "densenet", 224),
    "densenet201": ("DenseNet201", "densenet", 224),
    **{
        f"efficientnet_b{i}": (f"EfficientNetB{i}", "efficientnet", size)
        for i, size in enumerate((224, 240, 260, 300, 380, 456, 528, 600))
    },
    **{
        f"efficientnet_v2_b{i}": (f"EfficientNetV2B{i}", "efficientnet_v2", size)
        for i, size in enumerate((224, 240, 260, 300))
    },
    "efficientnet_v2_s": ("EfficientNetV2S", "efficientnet_v2", 384),
    "efficientnet_v2_m": ("EfficientNetV2M", "efficientnet_v2", 480),
    "efficientnet_v2_l": ("EfficientNetV2L", "efficientnet_v2", 480),
    **{
        f"convnext_{size.lower()}": (f"ConvNeXt{size}", "convnext", 224)
        for size in ("Tiny", "Small", "Base", "Large", "XLarge")
    },
    "nasnet_mobile": ("NASNetMobile", "nasnet", 224),
    "nasnet_large": ("NASNetLarge", "nasnet", 331),
}


def _constructor(function_name: str):
    def build(**kwargs):
        return getattr(keras.applications, function_name)(include_top=False, **kwargs)

    build.__name__ = f"keras.applications.{function_name}"
    return build


def application_specs() -> list[BackboneSpec]:
    """The specs of every registered `keras.applications` backbone.

    Example:
    >>> len([s for s in application_specs() if s.family == "vgg"])
    2
    """
    specs = []
    for name, (function_name, family, size) in MODELS.items():
        preprocessing, layout, min_size = FAMILIES[family]
        specs.append(
            BackboneSpec(
                name=name,
                family=family,
                source="keras.applications",
                build=_constructor(function_name),
                preprocessing=preprocessing,
                default_size=size,
                min_size=min_size,
                description=f"keras.applications.{function_name}",
                **layout,
            )
        )
    return specs
