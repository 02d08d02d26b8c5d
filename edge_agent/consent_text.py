"""The texts a resident consents to, versioned: what a consent row's version names.

PIPL (中华人民共和国个人信息保护法) Art. 28 names medical and health information as
sensitive personal information; Art. 29 asks for the individual's separate consent
(单独同意) to process it, Art. 30 that they are told why it is needed and what it does to
them, Art. 15 that they may withdraw consent and that withdrawing is made easy. GB/T
35273-2020 §5.4 and §5.6 ask for explicit consent to sensitive data and that a
withdrawal be kept as a record. A version's text never changes once a resident may have
consented to it: a new wording is a new version, and each consent row keeps the version
and the text's SHA-256 (FIPS 180-4) so what was shown is known later.

Pure values: no I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConsentText:
    version: str
    language: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


_V1 = """健康数据单独同意书（第 1 版）

本健康小屋/救护车的设备会测量并记录您的血压、血氧、心率、体温、血糖、体重和心电图等
健康数据，并与您的身份证号码、姓名和电话一起保存。这些属于敏感个人信息。

一、用途：为您提供测量结果、随访提醒和急救救治；数据经加密传送到县级医疗机构。
二、保存：您的身份信息在本设备上加密保存，送达县级机构后本设备只保留以假名标识的测量值。
三、查阅：只有获得授权的医护人员可以查看，每一次查阅都会留下记录。
四、撤回：您可以随时撤回本同意，撤回不影响撤回前已进行的处理；撤回后本设备不再把新的
测量值与您的身份关联。
五、自助测量：首次同意时请设置 4 到 12 位数字的密码，之后可凭身份证号码和密码，
或凭身份证本身，在自助终端查看您自己的记录。

我已阅读并理解以上内容，同意处理我的健康数据。"""

TEXTS: dict[str, ConsentText] = {
    "1": ConsentText("1", "zh_CN", _V1),
}
CURRENT = "1"


def text(version: str) -> ConsentText:
    """The text of `version`; KeyError naming the known versions otherwise."""
    found = TEXTS.get(version)
    if found is None:
        raise KeyError(f"consent text version {version[:20]!r}: one of {', '.join(TEXTS)}")
    return found
