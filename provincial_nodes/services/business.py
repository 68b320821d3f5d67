"""The national business registration database (planning and investment): enterprises.

A tax code (the enterprise code) has ten digits: the two-digit province code of the
registering province, a seven-digit serial and a check digit. The check digit is the
simulator's own: ``10 - (Σ dᵢ·wᵢ mod 11)`` over the first nine digits with weights
31, 29, 23, 19, 17, 13, 7, 5, 3; codes whose sum is divisible by 11 are never issued.
Each province has one enterprise per 120 inhabitants of the synthetic population's
census weights (at least 100); attributes are computed from the seed and the code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from typing import Annotated

from fastapi import FastAPI, Path
from pydantic import BaseModel

from common.errors import InvalidInput, NotFound
from provincial_nodes.services.common import service_app
from provincial_nodes.world import World

__all__ = ["EnterprisePublic", "check_digit", "create_app", "enterprise", "sample_tax_codes"]

_WEIGHTS = (31, 29, 23, 19, 17, 13, 7, 5, 3)
_FORMS = (
    ("Công ty TNHH một thành viên", 34),
    ("Công ty TNHH hai thành viên trở lên", 22),
    ("Công ty cổ phần", 28),
    ("Doanh nghiệp tư nhân", 12),
    ("Công ty hợp danh", 4),
)
_WORDS = (
    "An Phát",
    "Bình Minh",
    "Đại Việt",
    "Hoàng Long",
    "Phú Thịnh",
    "Minh Anh",
    "Sao Mai",
    "Thành Công",
    "Trường Sơn",
    "Việt Tiến",
    "Hồng Hà",
    "Tân Tiến",
    "Hải Đăng",
    "Kim Ngân",
    "Phương Nam",
    "Đông Á",
    "Thái Bình Dương",
    "Hưng Thịnh",
    "Nam Việt",
    "Thiên Phúc",
)
_TRADES = (
    ("4663", "Bán buôn vật liệu, thiết bị lắp đặt khác trong xây dựng", "Xây dựng"),
    ("6201", "Lập trình máy vi tính", "Công nghệ"),
    ("4933", "Vận tải hàng hóa bằng đường bộ", "Vận tải"),
    ("1410", "May trang phục", "May mặc"),
    ("5610", "Nhà hàng và các dịch vụ ăn uống phục vụ lưu động", "Ẩm thực"),
    ("4100", "Xây dựng nhà các loại", "Xây dựng"),
    ("4649", "Bán buôn đồ dùng khác cho gia đình", "Thương mại"),
    ("0118", "Trồng rau, đậu các loại và trồng hoa", "Nông nghiệp"),
    ("7020", "Hoạt động tư vấn quản lý", "Tư vấn"),
    ("8559", "Giáo dục khác chưa được phân vào đâu", "Giáo dục"),
)
_NAME_PREFIX = {
    "Công ty TNHH một thành viên": "Công ty TNHH",
    "Công ty TNHH hai thành viên trở lên": "Công ty TNHH",
    "Công ty cổ phần": "Công ty cổ phần",
    "Doanh nghiệp tư nhân": "Doanh nghiệp tư nhân",
    "Công ty hợp danh": "Công ty hợp danh",
}
_STATUSES = (("đang hoạt động", 86), ("tạm ngừng kinh doanh", 8), ("đã giải thể", 6))
TaxCode = Annotated[str, Path(pattern=r"^[0-9]{10}$")]


def check_digit(first_nine: str) -> int | None:
    """The check digit for nine digits, or None if such a code is never issued."""
    total = sum(int(d) * w for d, w in zip(first_nine, _WEIGHTS, strict=True)) % 11
    return None if total == 0 else (10 - total) % 10 if total == 10 else 10 - total


def _count(world: World, code: str) -> int:
    weights = world.population.spec.provinces
    return max(100, weights.get(code, 0) // 120)


class EnterprisePublic(BaseModel):
    tax_code: str
    name: str
    legal_form: str
    registered_on: dt.date
    charter_capital_vnd: int
    main_trade_code: str
    main_trade: str
    legal_representative: str
    legal_representative_id_number: str
    province_code: str
    address: str
    status: str


def _weighted(options: tuple[tuple[str, int], ...], u: int) -> str:
    total = sum(w for _, w in options)
    pick = u % total
    for name, weight in options:
        if pick < weight:
            return name
        pick -= weight
    return options[-1][0]


def enterprise(world: World, tax_code: str) -> EnterprisePublic | None:
    """The enterprise with this code; None if no such enterprise was registered."""
    province = world.province(tax_code[:2])
    if province is None or int(tax_code[2:9]) >= _count(world, tax_code[:2]):
        return None
    d = hashlib.blake2b(f"{world.population.spec.seed}:{tax_code}".encode(), digest_size=32)
    b = d.digest()
    u = [int.from_bytes(b[i : i + 4], "little") for i in range(0, 32, 4)]
    form = _weighted(_FORMS, u[0])
    brand = f"{_WORDS[u[1] % len(_WORDS)]} {_WORDS[u[2] % len(_WORDS)]}"
    trade_code, trade, sector = _TRADES[u[3] % len(_TRADES)]
    n = len(world.population)
    today = world.today()
    rep = world.population.citizen(u[4] % n)
    for step in range(1, 64):
        if rep.age(today) >= 20:
            break
        rep = world.population.citizen((u[4] + step * 104729) % n)
    name = f"{_NAME_PREFIX[form]} {sector} {brand}".upper()
    return EnterprisePublic(
        tax_code=tax_code,
        name=name,
        legal_form=form,
        registered_on=dt.date(1995, 1, 1) + dt.timedelta(days=u[5] % 11_000),
        charter_capital_vnd=(1 + u[6] % 500) * 100_000_000,
        main_trade_code=trade_code,
        main_trade=trade,
        legal_representative=rep.full_name,
        legal_representative_id_number=rep.id_number,
        province_code=tax_code[:2],
        address=f"Số {1 + u[7] % 300}, {province.short_name}",
        status=_weighted(_STATUSES, u[7] >> 9),
    )


def sample_tax_codes(rng: random.Random, world: World, province_code: str, n: int) -> list[str]:
    """n tax codes of enterprises that exist in a province."""
    codes: list[str] = []
    count = _count(world, province_code)
    while len(codes) < n:
        first = f"{province_code}{rng.randrange(count):07d}"
        digit = check_digit(first)
        if digit is not None:
            codes.append(first + str(digit))
    return codes


def create_app(world: World) -> FastAPI:
    app = service_app(
        "Cơ sở dữ liệu quốc gia về đăng ký doanh nghiệp — business registration",
        "Enterprises by tax code (simulated).",
    )

    @app.get("/enterprises/{tax_code}", response_model=EnterprisePublic)
    async def get_enterprise(tax_code: TaxCode) -> EnterprisePublic:
        """An enterprise by its 10-digit tax code."""
        if check_digit(tax_code[:9]) != int(tax_code[9]):
            raise InvalidInput(
                f"tax_code: {tax_code} fails the check digit",
                code="invalid_tax_code",
                extra={"field": "tax_code"},
            )
        found = enterprise(world, tax_code)
        if found is None:
            raise NotFound(f"no enterprise {tax_code}", code="enterprise_not_found")
        return found

    return app
