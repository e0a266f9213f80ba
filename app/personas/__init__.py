"""Personas: YAML files in personas/ and imported SillyTavern character cards."""

from app.personas.errors import PersonaError
from app.personas.model import Persona

__all__ = ["Persona", "PersonaError"]
