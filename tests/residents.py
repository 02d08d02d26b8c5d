"""Made-up residents for tests and benches: national ids valid by GB 11643-1999's check
character, Chinese names, mobile numbers; each different from every other."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from edge_agent.national_id import check_character

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华建国志红玉梅鹏辉飞鑫"


@dataclass(frozen=True, slots=True)
class Resident:
    national_id: str
    name: str
    phone: str


def resident(n: int) -> Resident:
    """The n-th resident (n >= 0): born 1940-01-01 + n days in Beijing Dongcheng
    (110101), sequence n % 1000; name from the n-th surname and two given characters."""
    born = dt.date(1940, 1, 1) + dt.timedelta(days=n % 25000)
    first17 = f"110101{born:%Y%m%d}{n // 25000 % 1000:03d}"
    name = (
        _SURNAMES[n % len(_SURNAMES)]
        + _GIVEN[n // len(_SURNAMES) % len(_GIVEN)]
        + _GIVEN[n * 7 % len(_GIVEN)]
    )
    return Resident(first17 + check_character(first17), name, f"139{n:08d}")


def residents(count: int) -> list[Resident]:
    return [resident(n) for n in range(count)]
