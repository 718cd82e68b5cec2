"""The default category taxonomy: ids used in code and configuration, and the names people read."""

CATEGORY_NAMES: dict[str, str] = {
    "roads": "Дороги",
    "landscaping": "Благоустройство",
    "housing_utilities": "ЖКХ",
    "public_transport": "Общественный транспорт",
    "healthcare": "Здравоохранение",
    "education": "Образование",
    "social": "Социальная защита",
    "ecology": "Экология",
    "safety": "Безопасность",
    "communications": "Связь",
    "other": "Прочее",
}

PRIORITY_NAMES: dict[str, str] = {
    "critical": "КРИТИЧЕСКИЙ (опасный объект)",
    "high": "высокий",
    "normal": "обычный",
    "low": "низкий",
}


def category_name(category_id: str) -> str:
    return CATEGORY_NAMES.get(category_id, category_id)
